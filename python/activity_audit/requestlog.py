"""
activity_audit.requestlog: one audit.request event per request, in the
Django package's request-log shape, without secrets.

Payload: request_repr {method, path, query_params, headers, body},
response_repr {status_code, body}, execution_time (seconds).  The
Authorization, Cookie and similar headers and password-like fields of JSON
or form bodies are replaced by "[REDACTED]"; bodies are cut at
MAX_BODY_CHARS.  The event is written after the response was made, in its
own transaction.
"""
import json
import logging
import re

from django.db import DatabaseError
from django.http.request import RawPostDataException

from . import conf
from .context import AuditContext, activate, deactivate, user_info_of
from .db import log_event

logger = logging.getLogger("activity_audit")

REDACTED = "[REDACTED]"
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-csrftoken", "x-api-key"}
_SECRET_KEY = re.compile(conf.SENSITIVE_NAME_RE + r"|csrf", re.IGNORECASE)


def _redact(value):
    """Replace the values of password-like keys, recursively."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _body(raw, content_type):
    """A body as JSON (redacted) when it is JSON or a form, else cut text."""
    if not raw:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "<%d bytes>" % len(raw)
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return _redact(json.loads(raw))
        except ValueError:
            pass
    elif content_type == "application/x-www-form-urlencoded":
        from django.http import QueryDict

        return _redact(_flatten(QueryDict(raw)))
    return raw[: conf.MAX_BODY_CHARS]


def _flatten(querydict):
    """A QueryDict as a dict: one value as is, several as a list."""
    return {k: (v[0] if len(v) == 1 else v) for k, v in querydict.lists()}


def _request_body(request):
    try:
        return _body(request.body, request.content_type)
    except RawPostDataException:
        # a multipart upload the view read as a stream: its fields only
        return _redact(_flatten(request.POST))


def _response_body(response):
    if getattr(response, "streaming", False):
        return "<streaming>"
    return _body(response.content, response.get("Content-Type"))


def request_payload(request, response, execution_time):
    """The audit.request payload."""
    headers = {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in request.headers.items()}
    return {
        "request_repr": {
            "method": request.method,
            "path": request.path,
            "query_params": _redact(_flatten(request.GET)),
            "headers": headers,
            "body": _request_body(request),
        },
        "response_repr": {
            "status_code": response.status_code,
            "body": _response_body(response),
        },
        "execution_time": round(execution_time, 6),
    }


def log_request(request, response, execution_time):
    """Write the request's audit.request event; a failure is logged, not raised
    (the response is made already)."""
    payload = request_payload(request, response, execution_time)
    encoded = json.dumps(payload, default=str)
    if len(encoded) > 4 * conf.MAX_BODY_CHARS + 8192:
        payload["request_repr"]["body"] = payload["response_repr"]["body"] = "<cut>"
    user = getattr(request, "user", None)
    state = AuditContext(request_id=getattr(request, "audit_request_id", None))
    if user is not None and getattr(user, "is_authenticated", False):
        state.user_id = user.pk
        state.user_info = user_info_of(user)
    token = activate(state)
    try:
        log_event("audit.request", request.method, payload,
                  message="%s %s %s" % (request.method, request.path, response.status_code))
    except DatabaseError:
        logger.exception("activity_audit: could not write the audit.request event")
    finally:
        deactivate(token)

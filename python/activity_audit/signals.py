"""
activity_audit.signals: Django's login, logout and failed-login signals
become audit.login events (LOGIN, LOGOUT, LOGIN_FAILED) when
AUDIT_LOG_LOGINS is on.

The event names the user through audit.user_id like every other event;
the payload holds what the signal adds (username, remote address, user
agent), never the password (Django hands us cleansed credentials).
"""
from . import conf
from .context import AuditContext, activate, current, deactivate, user_info_of
from .db import log_event


def _client(request):
    if request is None:
        return {}
    meta = getattr(request, "META", {})
    return {"remote_addr": meta.get("REMOTE_ADDR"), "user_agent": meta.get("HTTP_USER_AGENT")}


def _write(event_type, request, user, payload):
    """log_event() for ``user`` (None: nobody), keeping the request's id."""
    outer = current()
    request_id = getattr(request, "audit_request_id", None) or (outer.request_id if outer else None)
    state = AuditContext(request_id=request_id)
    if user is not None and getattr(user, "is_authenticated", False):
        state.user_id = user.pk
        state.user_info = user_info_of(user)
    payload.update(_client(request))
    token = activate(state)
    try:
        log_event("audit.login", event_type, payload)
    finally:
        deactivate(token)


def _username(user):
    return user.get_username() if user is not None and hasattr(user, "get_username") else None


def on_logged_in(sender, request, user, **kwargs):
    """user_logged_in receiver."""
    if conf.get("AUDIT_LOG_LOGINS"):
        _write("LOGIN", request, user, {"username": _username(user)})


def on_logged_out(sender, request, user, **kwargs):
    """user_logged_out receiver (user is None when nobody was logged in)."""
    if conf.get("AUDIT_LOG_LOGINS"):
        _write("LOGOUT", request, user, {"username": _username(user)})


def on_login_failed(sender, credentials, request=None, **kwargs):
    """user_login_failed receiver: the username tried, no user."""
    if conf.get("AUDIT_LOG_LOGINS"):
        from django.contrib.auth import get_user_model

        field = get_user_model().USERNAME_FIELD
        username = credentials.get(field, credentials.get("username"))
        _write("LOGIN_FAILED", request, None, {"username": username})

"""
activity_audit.middleware: the request's user, user_info and request_id
reach every write made while handling it.

The middleware only makes the request current (context.py); the database
layer (db.py) reads the user from it when a write is executed, so a user
that authentication inside the view sets is seen.  With AUDIT_LOG_REQUESTS
it also writes one audit.request event per request (requestlog.py).
"""
import time
import uuid

from asgiref.sync import iscoroutinefunction, sync_to_async

from . import conf
from .context import AuditContext, activate, deactivate

try:
    from asgiref.sync import markcoroutinefunction
except ImportError:  # asgiref < 3.6
    def markcoroutinefunction(func):
        import asyncio

        func._is_coroutine = asyncio.coroutines._is_coroutine
        return func


def _request_id(request):
    """The correlation id the client sent (if short and printable), or a new
    UUID."""
    header = conf.get("AUDIT_REQUEST_ID_HEADER")
    value = request.headers.get(header) if header else None
    if value and len(value) <= conf.MAX_REQUEST_ID_CHARS and value.isprintable():
        return value
    return str(uuid.uuid4())


class AuditLoggingMiddleware:
    """Sync and async middleware; see the module comment."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _begin(self, request):
        request.audit_request_id = _request_id(request)
        return activate(AuditContext(request_id=request.audit_request_id, request=request))

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.monotonic()
        token = self._begin(request)
        try:
            response = self.get_response(request)
            if conf.get("AUDIT_LOG_REQUESTS"):
                from .requestlog import log_request

                log_request(request, response, time.monotonic() - started)
            return response
        finally:
            deactivate(token)

    async def __acall__(self, request):
        """The async path: the same, with the event written in a thread."""
        started = time.monotonic()
        token = self._begin(request)
        try:
            response = await self.get_response(request)
            if conf.get("AUDIT_LOG_REQUESTS"):
                from .requestlog import log_request

                await sync_to_async(log_request)(request, response, time.monotonic() - started)
            return response
        finally:
            deactivate(token)

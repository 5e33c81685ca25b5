"""
activity_audit.context: who is acting, for the statements of this task.

The middleware and ``context()`` put the acting user here, in a ContextVar,
so each thread and each asyncio task has its own and ``sync_to_async`` hands
it on to the thread that runs the ORM.  The database layer (db.py) reads it
when a write is executed, not when the request starts: a user set later in
the view (authentication inside the view, as Django REST framework does it)
is seen by the writes after it.
"""
import contextlib
import contextvars
import json

from . import conf

_current = contextvars.ContextVar("activity_audit_context", default=None)


class AuditContext:
    """The context of one request or one ``context()`` block.

    ``request`` (set by the middleware) is read lazily: its ``user`` is
    evaluated only when a write needs it.  Explicit values win over it.
    """

    __slots__ = ("user_id", "user_info", "request_id", "extra", "request")

    def __init__(self, user_id=None, user_info=None, request_id=None, extra=None, request=None):
        self.user_id = user_id
        self.user_info = user_info
        self.request_id = request_id
        self.extra = extra or {}
        self.request = request

    def resolve(self):
        """Return (user_id, user_info, request_id, extra) as the GUCs take them."""
        user_id, user_info = self.user_id, self.user_info
        if self.request is not None and user_id is None:
            user = getattr(self.request, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                user_id = user.pk
                if user_info is None:
                    user_info = user_info_of(user)
        return (
            "" if user_id is None else str(user_id),
            "" if not user_info else json.dumps(user_info, default=str),
            "" if self.request_id is None else str(self.request_id),
            "" if not self.extra else json.dumps(self.extra, default=str),
        )


def user_info_of(user):
    """The AUDIT_USER_INFO_FIELDS the user model has, as a dict."""
    info = {}
    for field in conf.get("AUDIT_USER_INFO_FIELDS"):
        value = getattr(user, field, None)
        if value is not None and not callable(value):
            info[field] = value
    return info


def current():
    """The AuditContext in effect, or None."""
    return _current.get()


@contextlib.contextmanager
def context(user_id=None, user_info=None, request_id=None, **extra):
    """Attribute the writes inside the block to a user, for jobs and commands.

    Nested blocks inherit what they do not set; ``extra`` keys are merged.
    """
    outer = _current.get()
    if outer is not None:
        merged = dict(outer.extra)
        merged.update(extra)
        rid = request_id if request_id is not None else outer.request_id
        if user_id is None and user_info is None:
            # same user (also the request's, read lazily), more extra
            state = AuditContext(outer.user_id, outer.user_info, rid, merged, outer.request)
        else:
            state = AuditContext(user_id, user_info, rid, merged)
    else:
        state = AuditContext(user_id, user_info, request_id, extra)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


def activate(state):
    """Make ``state`` current; return the token for ``deactivate``."""
    return _current.set(state)


def deactivate(token):
    """Undo ``activate``."""
    _current.reset(token)

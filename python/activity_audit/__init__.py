"""
activity_audit: the Django app of the activity_audit PostgreSQL extension.

    INSTALLED_APPS += ["activity_audit"]
    MIDDLEWARE += ["activity_audit.middleware.AuditLoggingMiddleware"]

``context(user_id=..., user_info=..., request_id=..., **extra)`` attributes
the writes of a job (a management command, a Celery task) to a user;
``log_event(name, event_type, payload)`` writes an application event.
"""
from .context import context

__all__ = ["context", "log_event"]
__version__ = "0.1.0"


def log_event(name, event_type, payload=None, message=None, using="default"):
    """Write an application event (``app.*``) in the current transaction."""
    from .db import log_event as _log_event

    _log_event(name, event_type, payload, message, using)

"""
activity_audit.conf: the app's settings and their defaults (SPEC 11).

Every setting is read through ``get()`` at the moment it is needed, so that
``override_settings`` in tests and settings changed at start-up are seen.
"""
from django.conf import settings

DEFAULTS = {
    # service_name of every event (audit.service_name)
    "AUDIT_SERVICE_NAME": "default",
    # "app_label.Model" names whose tables are tracked, or "__all__"
    "AUDIT_TRACKED_MODELS": [],
    # per model: {"exclude": [...], "redact": [...], "log_noop_updates": bool}
    "AUDIT_MODEL_OPTIONS": {},
    # user attributes copied into user_info (those the user model has)
    "AUDIT_USER_INFO_FIELDS": ["title", "email", "first_name", "middle_name", "last_name", "sex"],
    # header carrying the correlation id; a new UUID when absent
    "AUDIT_REQUEST_ID_HEADER": "X-Request-ID",
    # login, logout and failed-login signals become audit.login events
    "AUDIT_LOG_LOGINS": True,
    # each request becomes an audit.request event
    "AUDIT_LOG_REQUESTS": False,
}

# Tables "__all__" never tracks: sessions, migrations, the admin's log.
ALL_SKIPPED_MODELS = {"sessions.session", "admin.logentry", "activity_audit.syncedtable"}
ALL_SKIPPED_TABLES = {"django_migrations", "django_session", "django_admin_log"}

# Column names excluded unless the model's options name them.
SENSITIVE_NAME_RE = r"(pass(word|wd|phrase)|secret|token|api_?key|^pwd$)"

# audit.request bodies longer than this are cut (events are bounded by
# audit.max_event_size on the server).
MAX_BODY_CHARS = 4096

# A request id the client sent is used only up to this length (else a new
# UUID): a longer one could exceed audit.max_context_size and make the
# request's writes fail.
MAX_REQUEST_ID_CHARS = 200


def get(name):
    """Return the value of setting ``name``, or its default."""
    return getattr(settings, name, DEFAULTS[name])

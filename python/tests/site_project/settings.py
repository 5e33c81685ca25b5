"""Settings of the test project: a site using activity_audit as SPEC 11 shows."""
import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "site_project.urls"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.admin",
    "django.contrib.messages",
    "clinic",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "django.template.context_processors.request",
    ]},
}]

_db = {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": os.environ.get("AUDIT_TEST_PGHOST", "/var/run/postgresql"),
    "PORT": os.environ.get("AUDIT_TEST_PGPORT", "5432"),
    "USER": "postgres",
}
DATABASES = {"default": dict(_db, NAME="audit_site")}
# the tests add aliases at run time: "noext" (a database without the
# extension) and "bouncer" (the test database through pgbouncer)
TEST_DB_SETTINGS = _db
BOUNCER_PORT = os.environ.get("AUDIT_TEST_BOUNCER_PORT")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- activity_audit, exactly as SPEC 11 shows it --------------------------
INSTALLED_APPS += ["activity_audit"]
MIDDLEWARE += ["activity_audit.middleware.AuditLoggingMiddleware"]
AUDIT_SERVICE_NAME = "clinic_service"
AUDIT_TRACKED_MODELS = ["clinic.Patient", "clinic.Visit", "auth.User"]
AUDIT_MODEL_OPTIONS = {"clinic.Patient": {"exclude": ["ssn"], "redact": ["email"]}}
AUDIT_LOG_REQUESTS = True

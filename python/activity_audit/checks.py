"""
activity_audit.checks: ``manage.py check`` says when auditing cannot work —
the database lacks the extension (E001), the server did not preload the
library (E002), the database cannot be asked (W001), or the driver is not
one the context transport supports (W002).
"""
from django.core import checks
from django.db import DatabaseError, connections

_HINT_EXT = "As a superuser: CREATE EXTENSION activity_audit; in that database."
_HINT_PRELOAD = ("Add activity_audit to shared_preload_libraries in postgresql.conf "
                 "and restart the server.")


@checks.register("activity_audit")
def check_database(app_configs=None, **kwargs):
    """Ask each PostgreSQL database whether auditing can work there."""
    errors = []
    for alias in connections:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        if getattr(connection.Database, "__name__", "") != "psycopg2":
            errors.append(checks.Warning(
                "database %r does not use psycopg2: request context does not reach its writes" % alias,
                hint="Use the psycopg2 driver.", id="activity_audit.W002"))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'activity_audit'")
                if cursor.fetchone() is None:
                    errors.append(checks.Error(
                        "database %r lacks the activity_audit extension" % alias,
                        hint=_HINT_EXT, id="activity_audit.E001"))
                    continue
        except DatabaseError as exc:
            errors.append(checks.Warning(
                "could not ask database %r about activity_audit: %s" % (alias, str(exc).strip()),
                hint="Check the DATABASES setting and that the server runs.",
                id="activity_audit.W001"))
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT activity_audit._check_preload()")
        except DatabaseError:
            errors.append(checks.Error(
                "the server of database %r did not preload the activity_audit library" % alias,
                hint=_HINT_PRELOAD, id="activity_audit.E002"))
    return errors

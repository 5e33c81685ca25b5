"""
activity_audit.apps: the app's configuration; wires the database wrapper,
the login signals, the system checks and audit_sync after migrate.
"""
from django.apps import AppConfig


class ActivityAuditConfig(AppConfig):
    """The ``activity_audit`` app (the Django package's own label)."""

    name = "activity_audit"
    label = "activity_audit"
    verbose_name = "Activity audit"
    default_auto_field = "django.db.models.AutoField"

    def ready(self):
        from django.contrib.auth import signals as auth_signals
        from django.db import connections
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the checks)
        from . import db, signals, sync

        connection_created.connect(db.install, dispatch_uid="activity_audit.install")
        # connections opened before ready() (rare) get it too
        for conn in connections.all():
            if conn.connection is not None:
                db.install(connection=conn)
        auth_signals.user_logged_in.connect(signals.on_logged_in, dispatch_uid="activity_audit.login")
        auth_signals.user_logged_out.connect(signals.on_logged_out, dispatch_uid="activity_audit.logout")
        auth_signals.user_login_failed.connect(signals.on_login_failed, dispatch_uid="activity_audit.failed")
        post_migrate.connect(sync.after_migrate, sender=self, dispatch_uid="activity_audit.sync")

"""audit_sync, after migrate and by hand; the system check."""
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings

from activity_audit.checks import check_database
from activity_audit.sync import sync
from clinic.models import Visit

from .base import AuditTestCase

LISTED = ["clinic.Patient", "clinic.Visit", "auth.User"]


def tracked():
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name::text, model_name, exclude, redact FROM activity_audit.tracked")
        return {r[0]: (r[1], sorted(r[2]), sorted(r[3])) for r in cursor.fetchall()}


class SyncTests(AuditTestCase):

    def test_migrate_tracked_the_listed_models(self):
        t = tracked()
        self.assertEqual(t["clinic_patient"], ("Patient", ["api_token", "ssn"], ["email"]))
        self.assertEqual(t["clinic_appointment"], ("Visit", [], []))
        self.assertEqual(t["auth_user"], ("User", ["password"], []))
        self.assertNotIn("django_session", t)
        self.assertNotIn("clinic_ward", t)

    def test_audit_sync_adds_and_removes(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT activity_audit.track('auth_group')")  # by hand
        with override_settings(AUDIT_TRACKED_MODELS=LISTED + ["clinic.Ward"]):
            out = StringIO()
            call_command("audit_sync", stdout=out)
            self.assertIn("track clinic_ward as Ward", out.getvalue())
        self.assertEqual(tracked()["clinic_ward"], ("Ward", ["secret_code"], []))
        out = StringIO()
        call_command("audit_sync", stdout=out)
        self.assertIn("untrack clinic_ward", out.getvalue())
        t = tracked()
        self.assertNotIn("clinic_ward", t)
        self.assertIn("auth_group", t)  # tracked by hand: left alone
        call_command("audit_sync", stdout=out)
        self.assertIn("already match", out.getvalue())
        from clinic.models import Ward
        Ward.objects.create(name="not audited any more")
        self.assertEqual(self.rows("clinic_ward"), [])
        with connection.cursor() as cursor:
            cursor.execute("SELECT activity_audit.untrack('auth_group')")

    def test_options_name_a_password_field(self):
        with override_settings(AUDIT_TRACKED_MODELS=LISTED + ["clinic.Ward"],
                               AUDIT_MODEL_OPTIONS=dict(settings.AUDIT_MODEL_OPTIONS,
                                                        **{"clinic.Ward": {"redact": ["secret_code"]}})):
            call_command("audit_sync", stdout=StringIO())
            self.assertEqual(tracked()["clinic_ward"], ("Ward", [], ["secret_code"]))
        call_command("audit_sync", stdout=StringIO())

    def test_all_skips_djangos_own_tables(self):
        with override_settings(AUDIT_TRACKED_MODELS="__all__"):
            actions = sync(dry_run=True)
        tables = {a.split()[1] for a in actions if a.startswith("track ")}
        self.assertTrue({"clinic_ward", "auth_group", "auth_user_groups", "django_content_type"} <= tables, tables)
        self.assertFalse(tables & {"django_session", "django_admin_log", "django_migrations",
                                   "activity_audit_synced_table"}, tables)
        self.assertNotIn("clinic_ward", tracked())  # dry run

    def test_migration_renaming_a_tracked_table(self):
        from clinic.models import Patient
        patient = Patient.objects.create(name="v")
        call_command("migrate", "clinic", "0001", verbosity=0)
        self.assertEqual(tracked()["clinic_visit"][0], "Visit")
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO clinic_visit (patient_id, reason) VALUES (%s, 'old name')", [patient.pk])
        call_command("migrate", "clinic", verbosity=0)
        t = tracked()
        self.assertNotIn("clinic_visit", t)
        self.assertEqual(t["clinic_appointment"][0], "Visit")
        Visit.objects.create(patient=patient, reason="new name")
        self.assertEqual([(e["model"], e["instance_repr"]["reason"]) for e in self.rows("clinic_visit")],
                         [("Visit", "old name")])
        self.assertEqual([(e["model"], e["instance_repr"]["reason"]) for e in self.rows("clinic_appointment")],
                         [("Visit", "new name")])

    def test_check_reports_missing_extension(self):
        self.assertEqual(check_database(), [])
        connections.databases["noext"] = dict(settings.TEST_DB_SETTINGS, NAME="audit_noext")
        try:
            errors = check_database()
        finally:
            connections["noext"].close()
            del connections.databases["noext"]
        self.assertEqual([e.id for e in errors], ["activity_audit.E001"])
        self.assertIn("'noext'", errors[0].msg)

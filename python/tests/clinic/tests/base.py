"""Helpers: read back what a test wrote, through flush() and log_stream()."""
import json

from django.db import connection
from django.test import TransactionTestCase


class AuditTestCase(TransactionTestCase):
    """Each test sees the events delivered after its setUp()."""

    def setUp(self):
        self.mark = self._last_seq()

    def _last_seq(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT activity_audit.flush()")
            cursor.execute("SELECT coalesce(max(seq), 0) FROM activity_audit.log_stream()")
            return cursor.fetchone()[0]

    def events(self, name=None, table=None):
        """The events of this database since setUp(), in seq order."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT activity_audit.flush()")
            self.assertTrue(cursor.fetchone()[0], "flush() timed out")
            cursor.execute(
                "SELECT event FROM activity_audit.log_stream() WHERE seq > %s"
                " AND event->>'db' = current_database() ORDER BY seq", [self.mark])
            # Django reads jsonb as text
            out = [json.loads(row[0]) for row in cursor.fetchall()]
        if name is not None:
            out = [e for e in out if e["name"] == name]
        if table is not None:
            out = [e for e in out if e.get("table") == table]
        return out

    def rows(self, table="clinic_patient"):
        """Row events (audit.model, no TRUNCATE) of one table."""
        return [e for e in self.events("audit.model", table) if e["event_type"] != "TRUNCATE"]

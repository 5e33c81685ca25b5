"""
manage.py audit_bench: what the Django layer costs (run.sh runs it with
BENCH=1, against the non-test database, after migrate).

Per request: requests/s of the write-heavy /patients/ view (3 writes, as
a logged-in user) with the middleware and the execute wrapper, and
without either (also with request.user loaded, as most views do).  Per statement: INSERTs/s with and without the prefix.
And pg_stat_statements' view: statements per request with and without.
"""
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client, override_settings

import activity_audit
from activity_audit.db import audit_execute_wrapper
from clinic.models import Patient


class Command(BaseCommand):
    help = "Measure the cost of activity_audit's Django layer."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=400)
        parser.add_argument("--statements", type=int, default=3000)

    def _wrapper(self, on):
        connection.ensure_connection()
        wrappers = connection.execute_wrappers
        if on and audit_execute_wrapper not in wrappers:
            wrappers.append(audit_execute_wrapper)
        if not on and audit_execute_wrapper in wrappers:
            wrappers.remove(audit_execute_wrapper)

    def _requests(self, n, on):
        from django.conf import settings

        mw = list(settings.MIDDLEWARE)
        if on != "with":
            mw.remove("activity_audit.middleware.AuditLoggingMiddleware")
        if on == "without, user loaded":
            mw.append("clinic.middleware.load_user")
        on = on == "with"
        with override_settings(MIDDLEWARE=mw, AUDIT_LOG_REQUESTS=False):
            client = Client()
            client.force_login(self.user)
            self._wrapper(on)
            client.post("/patients/", {"name": "warm"})
            start = time.monotonic()
            for _ in range(n):
                client.post("/patients/", {"name": "bench"})
            return n / (time.monotonic() - start)

    def _statements(self, n, on):
        self._wrapper(on)
        with activity_audit.context(user_id="bench", user_info={"email": "b@x"}, request_id="r"):
            with connection.cursor() as cursor:
                start = time.monotonic()
                for i in range(n):
                    cursor.execute("INSERT INTO clinic_patient (name, email, ssn, api_token)"
                                   " VALUES (%s, '', '', '')", ["s%d" % i])
                return n / (time.monotonic() - start)

    def _pgss(self, on):
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cursor.execute("SELECT pg_stat_statements_reset()")
        self._requests(20, on)
        self._wrapper(True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT sum(calls), count(*) FROM pg_stat_statements"
                           " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                           " AND query NOT LIKE '%%pg_stat_statements%%'")
            calls, entries = cursor.fetchone()
            cursor.execute("SELECT calls, query FROM pg_stat_statements"
                           " WHERE query LIKE '%%set_config(%%' ORDER BY calls DESC LIMIT 1")
            top = cursor.fetchone()
        return float(calls) / 21.0, entries, top

    def handle(self, *args, **opts):
        User = get_user_model()
        self.user = User.objects.filter(username="bench").first() or \
            User.objects.create_user("bench", "bench@x", "pw")
        out = self.stdout.write
        for _ in range(2):
            for on in ("without", "without, user loaded", "with"):
                rps = self._requests(opts["requests"], on)
                out("requests/s %-22s %8.1f" % (on, rps))
        for on in (False, True, False, True):
            sps = self._statements(opts["statements"], on)
            out("INSERTs/s  %-8s %8.1f" % ("with" if on else "without", sps))
        for on in ("without, user loaded", "with"):
            per_request, entries, top = self._pgss(on)
            on = on == "with"
            out("pg_stat_statements %-8s %.2f statements per request, %d entries"
                % ("with" if on else "without", per_request, entries))
            if on and top:
                out("  the prefix's entry: %d calls: %s" % (top[0], top[1][:160]))
        Patient.objects.all().delete()
        self._wrapper(True)

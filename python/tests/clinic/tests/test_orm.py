"""ORM and raw-SQL writes carry the context of activity_audit.context()."""
import threading

from django.db import connection, connections, transaction

import activity_audit
from clinic.models import Patient

from .base import AuditTestCase


class OrmTests(AuditTestCase):

    def test_create_save_delete(self):
        with activity_audit.context(user_id=7, user_info={"email": "job@x"}, request_id="job-1", task="nightly"):
            p = Patient.objects.create(name="ann", email="ann@x", ssn="111", api_token="t0k")
            p.name = "anne"
            p.save()
            p.delete()
        ev = self.rows()
        self.assertEqual([e["event_type"] for e in ev], ["CREATE", "UPDATE", "DELETE"])
        for e in ev:
            self.assertEqual(e["user_id"], "7")
            self.assertEqual(e["user_info"], {"email": "job@x"})
            self.assertEqual(e["request_id"], "job-1")
            self.assertEqual(e["extra"], {"task": "nightly"})
            self.assertEqual(e["service_name"], "clinic_service")
            self.assertEqual(e["model"], "Patient")
            self.assertNotIn("ssn", e["instance_repr"])        # excluded by the options
            self.assertNotIn("api_token", e["instance_repr"])  # password-like: excluded
            self.assertEqual(e["instance_repr"]["email"], "[REDACTED]")
        self.assertEqual(ev[1]["changes"], {"name": {"old": "ann", "new": "anne"}})

    def test_bulk_create_and_queryset_update(self):
        with activity_audit.context(user_id="bulk"):
            Patient.objects.bulk_create([Patient(name="b%d" % i) for i in range(3)])
            n = Patient.objects.filter(name__startswith="b").update(name="c")
        self.assertEqual(n, 3)
        ev = self.rows()
        self.assertEqual([e["event_type"] for e in ev], ["CREATE"] * 3 + ["UPDATE"] * 3)
        self.assertEqual({e["user_id"] for e in ev}, {"bulk"})

    def test_raw_sql_results_survive_the_prefix(self):
        with activity_audit.context(user_id="raw", user_info={"email": "100%@x"}):
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO clinic_patient (name, email, ssn, api_token)"
                               " VALUES (%s, '', '', '') RETURNING id", ["r1"])
                pk = cursor.fetchone()[0]
                cursor.execute("UPDATE clinic_patient SET name = name || '%%' WHERE id = %s", [pk])
                self.assertEqual(cursor.rowcount, 1)
                cursor.execute("  /* a comment */ with x as (delete from clinic_patient where id = %s"
                               " returning id) select count(*) from x", [pk])
                self.assertEqual(cursor.fetchone()[0], 1)
                cursor.executemany("INSERT INTO clinic_patient (name, email, ssn, api_token)"
                                   " VALUES (%s, '', '', '')", [["m1"], ["m2"]])
                cursor.execute("INSERT INTO clinic_patient (name, email, ssn, api_token)"
                               " VALUES ('no params %', '', '', '')")
        ev = self.rows()
        self.assertEqual([e["event_type"] for e in ev], ["CREATE", "UPDATE", "DELETE", "CREATE", "CREATE", "CREATE"])
        self.assertEqual(ev[1]["instance_repr"]["name"], "r1%")
        self.assertEqual({e["user_id"] for e in ev}, {"raw"})
        self.assertEqual({e["user_info"]["email"] for e in ev}, {"100%@x"})

    def test_rolled_back_atomic(self):
        with activity_audit.context(user_id="tx"):
            try:
                with transaction.atomic():
                    Patient.objects.create(name="gone")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            with transaction.atomic():
                Patient.objects.create(name="kept")
                with connection.cursor() as cursor:
                    # the context is local to this transaction, not to the session
                    cursor.execute("SELECT current_setting('audit.user_id')")
                    self.assertEqual(cursor.fetchone()[0], "tx")
        ev = self.rows()
        self.assertEqual([e["instance_repr"]["name"] for e in ev], ["kept"])
        self.assertEqual(ev[0]["user_id"], "tx")

    def test_nothing_left_on_the_connection(self):
        with activity_audit.context(user_id="once"):
            Patient.objects.create(name="a")
        Patient.objects.create(name="b")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('audit.user_id')")
            self.assertEqual(cursor.fetchone()[0], "")
        ev = self.rows()
        self.assertEqual([e["user_id"] for e in ev], ["once", None])
        self.assertEqual(ev[1]["service_name"], "clinic_service")

    def test_context_nested_and_in_threads(self):
        def job(user, names):
            with activity_audit.context(user_id=user):
                for name in names:
                    Patient.objects.create(name=name)
            connections.close_all()

        with activity_audit.context(user_id="outer", request_id="r-1", a=1):
            with activity_audit.context(b=2):
                Patient.objects.create(name="inherits")
            with activity_audit.context(user_id="inner"):
                Patient.objects.create(name="inner")
            threads = [threading.Thread(target=job, args=(u, ["%s-%d" % (u, i) for i in range(5)]))
                       for u in ("t1", "t2")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            Patient.objects.create(name="outer-again")
        by_name = {e["instance_repr"]["name"]: e for e in self.rows()}
        self.assertEqual(by_name["inherits"]["user_id"], "outer")
        self.assertEqual(by_name["inherits"]["extra"], {"a": 1, "b": 2})
        self.assertEqual(by_name["inherits"]["request_id"], "r-1")
        self.assertEqual(by_name["inner"]["user_id"], "inner")
        self.assertEqual(by_name["outer-again"]["user_id"], "outer")
        self.assertEqual(by_name["outer-again"]["extra"], {"a": 1})
        for u in ("t1", "t2"):
            for i in range(5):
                self.assertEqual(by_name["%s-%d" % (u, i)]["user_id"], u)
                self.assertIsNone(by_name["%s-%d" % (u, i)]["request_id"])

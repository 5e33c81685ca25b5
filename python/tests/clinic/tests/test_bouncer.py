"""Behind pgbouncer in transaction pooling mode, concurrent requests as
different users never see each other's context."""
import threading
import unittest

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client

from .base import AuditTestCase


@unittest.skipUnless(settings.BOUNCER_PORT, "pgbouncer is not running (AUDIT_TEST_BOUNCER_PORT unset)")
class BouncerTests(AuditTestCase):

    def setUp(self):
        super().setUp()
        connections.databases["bouncer"] = dict(
            settings.TEST_DB_SETTINGS, NAME=connection.settings_dict["NAME"],
            PORT=settings.BOUNCER_PORT, DISABLE_SERVER_SIDE_CURSORS=True)
        User = get_user_model()
        self.users = [User.objects.create_user(n, n + "@x", "pw") for n in ("alice", "bob")]
        self.mark = self._last_seq()

    def tearDown(self):
        del connections.databases["bouncer"]
        # pgbouncer keeps its server connection: end it, so that the test
        # database can be dropped
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                           " AND backend_type = 'client backend'")

    def test_two_users_share_one_server_connection(self):
        errors = []

        def worker(user):
            try:
                client = Client()
                client.force_login(user)
                for _ in range(15):
                    if client.get("/bouncer/?n=3").status_code != 200:
                        errors.append("status")
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker, args=(u,)) for u in self.users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        ev = self.rows()
        self.assertEqual(len(ev), 2 * 15 * 3)
        ids = {u.username: str(u.pk) for u in self.users}
        for e in ev:
            self.assertEqual(e["user_id"], ids[e["instance_repr"]["name"].split("-")[0]], e)
        # pool_size 1: one server connection served both users
        self.assertEqual(len({e["backend_pid"] for e in ev}), 1)

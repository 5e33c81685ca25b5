"""Requests through AuditLoggingMiddleware: their user reaches every write."""
import json
import uuid

import django
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from .base import AuditTestCase


class RequestTests(AuditTestCase):

    def setUp(self):
        super().setUp()
        User = get_user_model()
        self.alice = User.objects.create_user("alice", "alice@x", "s3cret", first_name="Alice")
        self.mark = self._last_seq()

    def test_session_authenticated_request(self):
        self.client.force_login(self.alice)
        self.mark = self._last_seq()
        r = self.client.post("/patients/?page=2", {"name": "p1", "password": "hunter2"},
                             HTTP_X_REQUEST_ID="req-42", HTTP_AUTHORIZATION="Bearer abc")
        self.assertEqual(r.status_code, 200)
        rows = self.rows() + self.rows("clinic_appointment")
        self.assertEqual(len(rows), 3)
        for e in rows:
            self.assertEqual(e["user_id"], str(self.alice.pk))
            self.assertEqual(e["user_info"], {"email": "alice@x", "first_name": "Alice", "last_name": ""})
            self.assertEqual(e["request_id"], "req-42")
        (req,) = self.events("audit.request")
        self.assertEqual(req["event_type"], "POST")
        self.assertEqual(req["level"], "API")
        self.assertEqual(req["user_id"], str(self.alice.pk))
        self.assertEqual(req["request_id"], "req-42")
        rr = req["request_repr"]
        self.assertEqual((rr["method"], rr["path"], rr["query_params"]), ("POST", "/patients/", {"page": "2"}))
        self.assertEqual(rr["headers"]["Authorization"], "[REDACTED]")
        self.assertEqual(rr["headers"]["Cookie"], "[REDACTED]")
        self.assertEqual(rr["body"], {"name": "p1", "password": "[REDACTED]"})
        self.assertEqual(req["response_repr"]["status_code"], 200)
        self.assertEqual(req["response_repr"]["body"], {"id": rows[0]["instance_repr"]["id"]})
        self.assertIsInstance(req["execution_time"], float)
        self.assertNotIn("hunter2", json.dumps(self.events()))
        self.assertNotIn(self.client.cookies["sessionid"].value, json.dumps(self.events()))

    def test_new_request_id_per_request(self):
        self.client.post("/patients/", {"name": "a"})
        self.client.post("/patients/", {"name": "b"})
        ids = [e["request_id"] for e in self.rows()]
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[0], ids[2])
        uuid.UUID(ids[0])
        self.assertEqual({e["user_id"] for e in self.rows()}, {None})

    def test_overlong_request_id_is_replaced(self):
        r = self.client.post("/patients/", {"name": "a"}, HTTP_X_REQUEST_ID="x" * 100000)
        self.assertEqual(r.status_code, 200)
        uuid.UUID(self.rows()[0]["request_id"])

    def test_view_that_authenticates_the_user_itself(self):
        self.client.get("/self-auth/", HTTP_X_USER="alice")
        ev = self.rows()
        self.assertEqual([(e["instance_repr"]["name"], e["user_id"]) for e in ev],
                         [("before-auth", None), ("after-auth", str(self.alice.pk))])

    def test_async_view(self):
        self.async_client.force_login(self.alice)
        self.mark = self._last_seq()
        if django.VERSION >= (4, 2):
            headers = {"headers": {"X-Request-ID": "async-1"}}
        else:  # Django 3.2: extra keyword arguments are the headers
            headers = {"X-Request-ID": "async-1"}

        async def get():
            return await self.async_client.get("/async/", **headers)

        r = async_to_sync(get)()
        self.assertEqual(r.status_code, 200)
        (e,) = self.rows()
        self.assertEqual((e["user_id"], e["request_id"]), (str(self.alice.pk), "async-1"))
        (req,) = self.events("audit.request")
        self.assertEqual((req["user_id"], req["request_id"]), (str(self.alice.pk), "async-1"))

    def test_logins(self):
        self.client.post("/login/", json.dumps({"username": "alice", "password": "wrong"}),
                         content_type="application/json", HTTP_X_REQUEST_ID="l-1")
        self.client.post("/login/", json.dumps({"username": "alice", "password": "s3cret"}),
                         content_type="application/json", HTTP_X_REQUEST_ID="l-2")
        self.client.get("/logout/", HTTP_X_REQUEST_ID="l-3")
        ev = self.events("audit.login")
        self.assertEqual([e["event_type"] for e in ev], ["LOGIN_FAILED", "LOGIN", "LOGOUT"])
        self.assertEqual([e["user_id"] for e in ev], [None, str(self.alice.pk), str(self.alice.pk)])
        self.assertEqual([e["request_id"] for e in ev], ["l-1", "l-2", "l-3"])
        self.assertEqual({e["username"] for e in ev}, {"alice"})
        self.assertEqual({e["level"] for e in ev}, {"LOGIN"})
        self.assertEqual({e["remote_addr"] for e in ev}, {"127.0.0.1"})
        everything = json.dumps(self.events())
        self.assertNotIn("s3cret", everything)
        self.assertNotIn('"wrong"', everything)
        # the login's last_login update is alice's own write
        (upd,) = [e for e in self.rows("auth_user") if e["event_type"] == "UPDATE"]
        self.assertEqual(upd["user_id"], str(self.alice.pk))
        self.assertNotIn("password", upd["instance_repr"])

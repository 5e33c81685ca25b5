"""The test project's models."""
from django.db import models


class Patient(models.Model):
    name = models.TextField()
    email = models.TextField(default="")
    ssn = models.TextField(default="")
    api_token = models.TextField(default="")


class Visit(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
    reason = models.TextField()

    class Meta:
        db_table = "clinic_appointment"


class Ward(models.Model):
    """Not listed in the settings: audit_sync's add/remove test lists it."""
    name = models.TextField()
    secret_code = models.TextField(default="")

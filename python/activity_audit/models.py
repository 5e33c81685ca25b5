"""
activity_audit.models: the tables audit_sync tracked, so that it untracks
only those (never a table someone tracked by hand).  The table's OID finds
it again after a migration renamed it.
"""
from django.db import models


class SyncedTable(models.Model):
    """A table audit_sync tracked for a model listed in the settings."""

    table_oid = models.BigIntegerField(unique=True)
    table_name = models.TextField()
    model_label = models.TextField()
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "activity_audit_synced_table"

    def __str__(self):
        return "%s (%s)" % (self.table_name, self.model_label)

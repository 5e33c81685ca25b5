# activity_audit's own table: what audit_sync tracked.
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="SyncedTable",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("table_oid", models.BigIntegerField(unique=True)),
                ("table_name", models.TextField()),
                ("model_label", models.TextField()),
                ("synced_at", models.DateTimeField(auto_now=True)),
            ],
            options={"db_table": "activity_audit_synced_table"},
        ),
    ]

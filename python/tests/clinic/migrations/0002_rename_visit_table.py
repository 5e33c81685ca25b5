# Renames a tracked model's table: it must stay tracked.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("clinic", "0001_initial")]
    operations = [migrations.AlterModelTable(name="visit", table="clinic_appointment")]

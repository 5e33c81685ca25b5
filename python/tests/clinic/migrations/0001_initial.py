from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Patient",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.TextField()),
                ("email", models.TextField(default="")),
                ("ssn", models.TextField(default="")),
                ("api_token", models.TextField(default="")),
            ],
        ),
        migrations.CreateModel(
            name="Ward",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.TextField()),
                ("secret_code", models.TextField(default="")),
            ],
        ),
        migrations.CreateModel(
            name="Visit",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("reason", models.TextField()),
                ("patient", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="clinic.patient")),
            ],
        ),
    ]

"""
manage.py audit_sync: track what AUDIT_TRACKED_MODELS lists (with
AUDIT_MODEL_OPTIONS), untrack what audit_sync tracked before and is no
longer listed.  migrate runs it too.
"""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from ...sync import extension_installed, sync


class Command(BaseCommand):
    help = "Make the database's audited tables match AUDIT_TRACKED_MODELS and AUDIT_MODEL_OPTIONS."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS,
                            help='The database to synchronize. Defaults to the "default" database.')
        parser.add_argument("--dry-run", action="store_true",
                            help="Show what would change; change nothing.")

    def handle(self, *args, **options):
        using = options["database"]
        if not extension_installed(connections[using]):
            raise CommandError(
                "database %r lacks the activity_audit extension; run CREATE EXTENSION activity_audit "
                "there as a superuser" % using
            )
        try:
            actions = sync(using, dry_run=options["dry_run"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        for action in actions:
            self.stdout.write(("would " if options["dry_run"] else "") + action)
        if not actions and options["verbosity"]:
            self.stdout.write("audited tables already match the settings")

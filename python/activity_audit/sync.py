"""
activity_audit.sync: make the database's tracked tables match the settings
(``manage.py audit_sync``, and after every ``migrate``).

track() each listed model's table with its options (only when its
configuration differs, so a sync that changes nothing writes no TRACK
event); untrack() the tables this module tracked earlier and no longer
listed.  A table someone tracked by hand is never untracked.  The record of
what was tracked (models.SyncedTable) is keyed by the table's OID, so a
table a migration renamed is still ours, and one it recreated is tracked
again.
"""
import re

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction

from . import conf

_SENSITIVE = re.compile(conf.SENSITIVE_NAME_RE, re.IGNORECASE)


def _label(model):
    return model._meta.label_lower


def listed_models(using):
    """The concrete models AUDIT_TRACKED_MODELS names, for database ``using``."""
    setting = conf.get("AUDIT_TRACKED_MODELS")
    if setting == "__all__":
        models = [
            m for m in apps.get_models(include_auto_created=True)
            if m._meta.managed and not m._meta.proxy
            and _label(m) not in conf.ALL_SKIPPED_MODELS
            and m._meta.db_table not in conf.ALL_SKIPPED_TABLES
        ]
    else:
        models = []
        for name in setting or []:
            try:
                models.append(apps.get_model(name))
            except (LookupError, ValueError):
                raise ImproperlyConfigured(
                    "AUDIT_TRACKED_MODELS: %r is not an installed model "
                    "(write it as \"app_label.ModelName\")" % name
                )
    return [m for m in models if router.allow_migrate_model(using, m)]


def _options(model):
    """The model's AUDIT_MODEL_OPTIONS entry (keys compared without case)."""
    for key, value in (conf.get("AUDIT_MODEL_OPTIONS") or {}).items():
        if key.lower() == _label(model):
            return value or {}
    return {}


def _columns(model, names, option):
    """Map field or column names to columns; an unknown one is an error."""
    by_name = {}
    for field in model._meta.concrete_fields:
        by_name[field.name] = field.column
        by_name[field.column] = field.column
    out = []
    for name in names or []:
        if name not in by_name:
            raise ImproperlyConfigured(
                "AUDIT_MODEL_OPTIONS[%r][%r]: %s has no field %r"
                % (model._meta.label, option, model._meta.label, name)
            )
        out.append(by_name[name])
    return out


def configuration(model):
    """(model_name, exclude, redact, log_noop_updates) for track()."""
    opts = _options(model)
    unknown = set(opts) - {"exclude", "redact", "log_noop_updates"}
    if unknown:
        raise ImproperlyConfigured(
            "AUDIT_MODEL_OPTIONS[%r]: unknown option(s) %s; use exclude, redact, log_noop_updates"
            % (model._meta.label, ", ".join(sorted(unknown)))
        )
    exclude = _columns(model, opts.get("exclude"), "exclude")
    redact = _columns(model, opts.get("redact"), "redact")
    for field in model._meta.concrete_fields:
        col = field.column
        if _SENSITIVE.search(col) and col not in exclude and col not in redact:
            exclude.append(col)
    return model.__name__, sorted(set(exclude)), sorted(set(redact)), bool(opts.get("log_noop_updates", False))


def extension_installed(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'activity_audit'")
        return cursor.fetchone() is not None


def sync(using="default", dry_run=False, log=None):
    """Make the tracked tables of database ``using`` match the settings.

    Returns the list of actions taken, as text."""
    from .models import SyncedTable

    log = log or (lambda msg: None)
    connection = connections[using]
    actions = []
    wanted = {}
    models = listed_models(using)
    listed = {_label(m) for m in models}
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for model in models:
            cursor.execute("SELECT pg_catalog.to_regclass(%s)::oid", [connection.ops.quote_name(model._meta.db_table)])
            oid = cursor.fetchone()[0]
            if oid is None:
                log("skipped %s: table %s does not exist" % (model._meta.label, model._meta.db_table))
                continue
            wanted[oid] = (model, configuration(model))
        cursor.execute(
            "SELECT table_name::oid, model_name, exclude, redact, log_noop_updates FROM activity_audit.tracked"
        )
        tracked = {row[0]: (row[1], sorted(row[2]), sorted(row[3]), row[4]) for row in cursor.fetchall()}
        cursor.execute("SELECT oid FROM pg_catalog.pg_class")
        existing = {row[0] for row in cursor.fetchall()}
        records = {r.table_oid: r for r in SyncedTable.objects.using(using).all()}

        for oid, record in records.items():
            if oid not in existing:
                # dropped or recreated by a migration: forget it
                if not dry_run:
                    record.delete(using=using)
            elif oid not in wanted and record.model_label.lower() not in listed:
                # (a listed model whose table has another name now, say
                # while a migration is reverted, stays tracked)
                if oid in tracked:
                    actions.append("untrack %s (%s)" % (record.table_name, record.model_label))
                    if not dry_run:
                        cursor.execute("SELECT activity_audit.untrack(%s::oid::regclass)", [oid])
                if not dry_run:
                    record.delete(using=using)

        for oid, (model, config) in wanted.items():
            table = model._meta.db_table
            by_hand = oid in tracked and oid not in records
            if tracked.get(oid) != config:
                actions.append("track %s as %s" % (table, config[0]))
                if not dry_run:
                    cursor.execute(
                        "SELECT activity_audit.track(%s::oid::regclass, %s, %s::text[], %s::text[], %s)",
                        [oid, config[0], config[1], config[2], config[3]],
                    )
            if by_hand or dry_run:
                continue
            SyncedTable.objects.using(using).update_or_create(
                table_oid=oid, defaults={"table_name": table, "model_label": model._meta.label}
            )
        if dry_run:
            transaction.set_rollback(True, using=using)
    for action in actions:
        log(action)
    return actions


def after_migrate(sender, using="default", verbosity=1, **kwargs):
    """post_migrate receiver: sync when there is something to do and the
    database has the extension (the system check reports it otherwise)."""
    from .models import SyncedTable

    connection = connections[using]
    if connection.vendor != "postgresql" or not extension_installed(connection):
        if conf.get("AUDIT_TRACKED_MODELS") and verbosity:
            print("activity_audit: database %r lacks the extension; audit_sync skipped" % using)
        return
    if not conf.get("AUDIT_TRACKED_MODELS") and not SyncedTable.objects.using(using).exists():
        return
    sync(using, log=(print if verbosity >= 2 else None))

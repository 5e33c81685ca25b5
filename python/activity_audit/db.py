"""
activity_audit.db: how the acting user reaches the database.

Every PostgreSQL connection Django opens gets one execute wrapper.  For a
statement that can write audited rows (INSERT, UPDATE, DELETE, MERGE, COPY,
TRUNCATE, CALL, a WITH that modifies, and our own log_event() calls) it
prepends

    SELECT set_config('audit.service_name', ..., true), ...;

to the same query string.  psycopg2 sends both in one simple-protocol
message, so they run in the statement's own transaction: the implicit one in
autocommit, the open one inside atomic().  is_local = true means nothing is
left on the server connection when that transaction ends (safe behind
PgBouncer in transaction pooling mode and for pooled connections), and
psycopg2 reports the last statement's rows, rowcount and RETURNING values,
so callers see no difference.  SELECTs pay nothing.

Limits: a SELECT that calls a function which writes carries no context
(unless an earlier write of the same transaction set it), and the prefix
needs client-side parameters, which psycopg2 has; with other drivers the
wrapper does nothing (the system check says so).
"""
import json
import re

from django.db import connections

from . import conf
from .context import current

# First keyword of a statement that can write audited rows.
_WRITE_START = re.compile(
    r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(*\s*"
    r"(INSERT|UPDATE|DELETE|MERGE|COPY|TRUNCATE|CALL|WITH"
    r"|SELECT\s+activity_audit\.log_event\s*\()",
    re.IGNORECASE | re.DOTALL,
)
_MODIFYING = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)

_PREFIX_ALL = (
    "SELECT pg_catalog.set_config('audit.service_name', %s, true),"
    " pg_catalog.set_config('audit.user_id', %s, true),"
    " pg_catalog.set_config('audit.user_info', %s, true),"
    " pg_catalog.set_config('audit.request_id', %s, true),"
    " pg_catalog.set_config('audit.extra', %s, true);"
)
_PREFIX_SERVICE = "SELECT pg_catalog.set_config('audit.service_name', %s, true);"


def is_write(sql):
    """True if ``sql`` can write audited rows (and so needs the context)."""
    if not isinstance(sql, str):
        return False
    match = _WRITE_START.match(sql)
    if match is None:
        return False
    if match.group(1).upper() == "WITH":
        return _MODIFYING.search(sql, match.end()) is not None
    return True


def context_prefix(raw_cursor):
    """The set_config() statement for the current context, values quoted."""
    service = str(conf.get("AUDIT_SERVICE_NAME"))
    state = current()
    if state is None:
        sql = raw_cursor.mogrify(_PREFIX_SERVICE, (service,))
    else:
        sql = raw_cursor.mogrify(_PREFIX_ALL, (service,) + state.resolve())
    return sql.decode("utf-8") if isinstance(sql, bytes) else sql


def audit_execute_wrapper(execute, sql, params, many, context):
    """Execute wrapper: give writes the acting user's context (see module doc)."""
    if not is_write(sql):
        return execute(sql, params, many, context)
    raw = getattr(context["cursor"], "cursor", None)
    if raw is None or not hasattr(raw, "mogrify"):
        return execute(sql, params, many, context)
    prefix = context_prefix(raw)
    if many or params is not None:
        # the query string is a template: keep our '%' literal
        prefix = prefix.replace("%", "%%")
    return execute(prefix + "\n" + sql, params, many, context)


def install(sender=None, connection=None, **kwargs):
    """connection_created receiver: add the wrapper once per connection."""
    if connection is None or connection.vendor != "postgresql":
        return
    if audit_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(audit_execute_wrapper)


def log_event(name, event_type, payload=None, message=None, using="default"):
    """Write an application event (SQL activity_audit.log_event) in the
    current transaction of connection ``using``, with the current context."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT activity_audit.log_event(%s, %s, %s::jsonb, %s)",
            [name, event_type, json.dumps(payload or {}, default=str), message],
        )

/*-------------------------------------------------------------------------
 *
 * app_event.c
 *		activity_audit.log_event(): application events (a login, an HTTP
 *		request, anything named app.*) in the same signed, transactional,
 *		exactly-once stream as the row events (SPEC section 10).
 *
 * The Django package this project descends from writes three log types:
 * audit.model (rows: ours), audit.request and audit.login.  The last two,
 * and an application's own app.* events, are written here: checked (the
 * names and event types the extension writes itself are refused, and so is
 * a payload key that would shadow one of the event's own keys), then built
 * by event.c like every event and written as one self-contained message in
 * the calling transaction, so that a rollback takes it back and the writer
 * delivers it at commit, in commit order, with seq and hash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/json_out.h"
#include "common/strbuf.h"

PG_FUNCTION_INFO_V1(activity_audit_log_event);

/*
 * Keys an application event has of its own (SPEC 4 and 10), the keys the
 * writer adds to a delivered line, and the signature: none may come from
 * the payload.
 */
static const char *const reserved_keys[] = {
	"timestamp", "level", "name", "message", "request_id", "service_name",
	"event_type", "user_id", "user_info", "extra", "db", "db_user",
	"session_user", "application_name", "client_addr", "backend_pid", "txid",
	"seq", "lsn", "committed_at", "prev_hash", "hash", "sig"
};

/* The level the Django package gives each log type. */
static const char *
level_of(const char *name)
{
	if (strcmp(name, "audit.login") == 0)
		return "LOGIN";
	if (strcmp(name, "audit.request") == 0)
		return "API";
	return "AUDIT";
}

/* name: audit.login, audit.request or app.<something>; else an ERROR. */
static void
check_name(const char *name)
{
	if (strcmp(name, "audit.login") == 0 || strcmp(name, "audit.request") == 0)
		return;
	if (strncmp(name, "app.", 4) == 0 && name[4] != '\0')
		return;
	if (strcmp(name, "audit.model") == 0 || strcmp(name, "audit.config") == 0 ||
		strcmp(name, "audit.gap") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event name \"%s\" is reserved for activity_audit's own events", name),
				 errhint("Use \"audit.login\", \"audit.request\" or a name starting with \"app.\".")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid event name \"%s\"", name),
			 errhint("Use \"audit.login\", \"audit.request\" or a name starting with \"app.\".")));
}

/* event_type: any non-empty text but the server's own login types. */
static void
check_event_type(const char *event_type)
{
	if (event_type[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type must not be empty"),
				 errhint("Name what happened, for example \"LOGIN\" or \"EXPORT\".")));
	if (strcmp(event_type, "DB_LOGIN") == 0 || strcmp(event_type, "DB_LOGIN_FAILED") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type \"%s\" is reserved for the server's own login events", event_type),
				 errhint("Database logins are recorded by the server itself (audit.log_connections).")));
}

/* A payload key that is one of the event's own is an ERROR naming it. */
static void
check_key(const char *key, int len)
{
	int			i;

	for (i = 0; i < lengthof(reserved_keys); i++)
		if (strlen(reserved_keys[i]) == len && memcmp(reserved_keys[i], key, len) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload key \"%s\" is one of the event's own keys", reserved_keys[i]),
					 errhint("Rename the key; the event sets \"%s\" itself.", reserved_keys[i])));
}

/* A top-level payload value as compact JSON text. */
static void
append_value(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			aa_put_lit(buf, "null");
			break;
		case jbvBool:
			if (v->val.boolean)
				aa_put_lit(buf, "true");
			else
				aa_put_lit(buf, "false");
			break;
		case jbvString:
			aa_json_string(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			aa_put_str(buf, DatumGetCString(DirectFunctionCall1(numeric_out,
																NumericGetDatum(v->val.numeric))));
			break;
		case jbvBinary:
			/* nested object or array: as jsonb prints it, as for jsonb columns */
			(void) JsonbToCString(buf, v->val.binary.data, v->val.binary.len);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * The payload's members as "key":value,... in jsonb's order; an ERROR
 * unless it is a JSON object without reserved keys.
 */
static void
payload_members(Jsonb *payload, StringInfo buf)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object"),
				 errhint("Pass the event's own data as an object, for example '{\"path\": \"/login\"}'.")));
	it = JsonbIteratorInit(&payload->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			check_key(v.val.string.val, v.val.string.len);
			if (!first)
				aa_put_char(buf, ',');
			first = false;
			aa_json_string(buf, v.val.string.val, v.val.string.len);
			aa_put_char(buf, ':');
		}
		else if (tok == WJB_VALUE)
			append_value(buf, &v);
	}
}

/* A required text argument, or an ERROR naming it. */
static char *
required_text(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what),
				 errhint("Call activity_audit.log_event(name, event_type, payload, message).")));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * log_event(name, event_type, payload jsonb DEFAULT '{}', message text
 * DEFAULT NULL): write one application event in the current transaction.
 */
Datum
activity_audit_log_event(PG_FUNCTION_ARGS)
{
	char	   *name = required_text(fcinfo, 0, "name");
	char	   *event_type = required_text(fcinfo, 1, "event_type");
	char	   *message;
	StringInfoData members;

	aa_require_preload();
	check_name(name);
	check_event_type(event_type);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must be a JSON object, not null"),
				 errhint("Pass '{}' for an event without data of its own.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write an audit event during recovery"),
				 errhint("Call activity_audit.log_event() on the primary.")));

	initStringInfo(&members);
	payload_members(PG_GETARG_JSONB_P(2), &members);
	if (PG_ARGISNULL(3))
		message = psprintf("%s event", event_type);
	else
		message = text_to_cstring(PG_GETARG_TEXT_PP(3));

	aa_emit_app_event(level_of(name), name, message, event_type,
					  members.data, members.len);
	pfree(members.data);
	PG_RETURN_VOID();
}

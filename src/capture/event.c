/*-------------------------------------------------------------------------
 *
 * event.c
 *		Assemble one audit event as JSON and write it into the WAL.
 *
 * The event is built straight into one buffer, keys in the contract's
 * order, from the relation cache (relinfo.c), the session settings
 * (guc.c) and the row.  It is then written as transactional
 * logical-decoding messages with prefix "activity_audit" (their layout is
 * common/message.h's): it becomes durable with the change and disappears
 * with a rollback of the (sub)transaction.  With audit.wal_format =
 * compact, what the rows of a relation share is written in a header
 * message only when it changes -- another transaction or subtransaction,
 * a context setting assigned, another role or application_name, or too
 * many other headers since -- and each row's message holds its own part:
 * about the row's JSON plus 80 bytes instead of 600 more.  An UPDATE's
 * changes there hold only the old values; the new ones are in the row.
 *
 * Every message is signed with its own number in the transaction
 * (common/sign.h): numbers are taken right before the message is written,
 * so they rise in WAL order also when a firing nests in another.
 *
 * Values that are the same for every row of a session (database, client
 * address, the names of the current and the session role) are computed
 * once and reused; nothing here reads the catalogs per row.
 *
 * This file must not decide whether a row is audited (capture.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netdb.h>

#include "access/detoast.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/ip.h"
#include "datatype/timestamp.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "guc.h"
#include "common/json_out.h"
#include "common/message.h"
#include "common/sign.h"
#include "common/strbuf.h"

/* Session-constant pieces, built on first use. */
static char *db_field = NULL;	/* "db":"..." */
static char *client_addr_value = NULL;	/* "1.2.3.4" or null */

/* A role's name as a JSON string, looked up again only when it changes. */
typedef struct AARoleName
{
	Oid			role;			/* InvalidOid: not looked up yet */
	char	   *value;			/* "name", in TopMemoryContext */
} AARoleName;

static AARoleName current_role_name = {InvalidOid, NULL};
static AARoleName session_role_name = {InvalidOid, NULL};

/* Buffers reused across rows, owned by TopMemoryContext. */
static StringInfoData event_buf;
static StringInfoData id_buf;
static StringInfoData header_buf;
static bool buffers_ready = false;

/* The messages of the current top-level transaction (see next_number). */
static uint64 numbered_txid = 0;
static uint64 messages_written = 0;
static uint64 headers_written = 0;

static void append_provenance(StringInfo buf);

static const char *const event_type_names[] = {
	"CREATE", "UPDATE", "DELETE", "TRUNCATE"
};

/* Role renames invalidate the cached role names, and so the headers. */
static void
role_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	current_role_name.role = InvalidOid;
	session_role_name.role = InvalidOid;
	aa_context_generation++;
}

/* The top-level transaction's full id, which every message names. */
static inline uint64
top_txid(void)
{
	return U64FromFullTransactionId(GetTopFullTransactionId());
}

/*
 * The number of the next message of transaction txid: 1, 2, ... across the
 * whole top-level transaction, rolled back subtransactions included, so
 * that the writer can accept each number once and only rising.
 */
static uint64
next_number(uint64 txid)
{
	if (txid != numbered_txid)
	{
		numbered_txid = txid;
		messages_written = 0;
		headers_written = 0;
	}
	return ++messages_written;
}

/* The client's address as inet_client_addr() shows it, or null. */
static char *
compute_client_addr(void)
{
	char		host[NI_MAXHOST];
	StringInfoData buf;

	if (MyProcPort == NULL)
		return "null";
	switch (MyProcPort->raddr.addr.ss_family)
	{
		case AF_INET:
		case AF_INET6:
			break;
		default:
			return "null";
	}
	host[0] = '\0';
	if (pg_getnameinfo_all(&MyProcPort->raddr.addr, MyProcPort->raddr.salen,
						   host, sizeof(host), NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return "null";
	clean_ipv6_addr(MyProcPort->raddr.addr.ss_family, host);
	initStringInfo(&buf);
	aa_json_string(&buf, host, strlen(host));
	return buf.data;
}

/* Build the session-constant pieces once per backend. */
static void
init_session_values(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	StringInfoData buf;
	char	   *dbname = get_database_name(MyDatabaseId);

	initStringInfo(&buf);
	aa_put_lit(&buf, "\"db\":");
	aa_json_string(&buf, dbname, strlen(dbname));
	db_field = buf.data;
	client_addr_value = compute_client_addr();
	initStringInfo(&event_buf);
	initStringInfo(&id_buf);
	initStringInfo(&header_buf);
	CacheRegisterSyscacheCallback(AUTHOID, role_callback, (Datum) 0);
	buffers_ready = true;
	MemoryContextSwitchTo(old);
}

/*
 * The name of 'role' as a JSON string, from 'cache' unless the role
 * changed (SET ROLE, a SECURITY DEFINER function, SET SESSION
 * AUTHORIZATION) or was renamed since.
 */
static const char *
role_value(AARoleName *cache, Oid role)
{
	if (role != cache->role || cache->value == NULL)
	{
		char	   *name = GetUserNameFromId(role, false);
		StringInfoData buf;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&buf);
		aa_json_string(&buf, name, strlen(name));
		MemoryContextSwitchTo(old);
		if (cache->value)
			pfree(cache->value);
		cache->value = buf.data;
		cache->role = role;
	}
	return cache->value;
}

/*
 * "timestamp": now, as RFC 3339 UTC with microseconds.  Rows of one
 * statement mostly change within the same second, so the text up to the
 * seconds is cached and only the microseconds are formatted per row.
 */
static void
append_timestamp(StringInfo buf, TimestampTz ts)
{
	static pg_time_t cached_second = -1;
	static char prefix[32];		/* "YYYY-MM-DDTHH:MM:SS. */
	static int	prefix_len = 0;
	pg_time_t	second = (pg_time_t) (ts / USECS_PER_SEC);
	int			usec = (int) (ts % USECS_PER_SEC);
	char		frac[8];
	int			i;

	if (usec < 0)
	{
		usec += USECS_PER_SEC;
		second--;
	}
	if (second != cached_second)
	{
		char		text[AA_UTC_TEXT_LEN + 1];

		/* "YYYY-MM-DDTHH:MM:SS." of the full form, after a quote */
		aa_format_utc(ts, text);
		prefix[0] = '"';
		memcpy(prefix + 1, text, 20);
		prefix_len = 21;
		cached_second = second;
	}
	aa_put(buf, prefix, prefix_len);
	for (i = 5; i >= 0; i--)
	{
		frac[i] = '0' + usec % 10;
		usec /= 10;
	}
	frac[6] = 'Z';
	frac[7] = '"';
	aa_put(buf, frac, 8);
}

/* A session setting as a JSON string, or null when empty. */
static void
append_setting(StringInfo buf, const char *value)
{
	if (value == NULL || value[0] == '\0')
		aa_put_lit(buf, "null");
	else
		aa_json_string(buf, value, strlen(value));
}

/* One column's value, honouring redaction. */
static inline void
append_column_value(StringInfo buf, AAColumn *col, Datum value, bool isnull)
{
	if (col->redacted)
		aa_put_lit(buf, "\"[REDACTED]\"");
	else if (isnull)
		aa_put_lit(buf, "null");
	else
		aa_value_append(buf, &col->vo, value);
}

/*
 * Whether an audited column differs between the old and the new row: in
 * its bytes and, where floats are involved, also in the JSON that the
 * event would show, so that "changes" never lists equal old and new.
 */
static bool
column_changed(AAColumn *col, Datum oldv, bool oldnull, Datum newv, bool newnull)
{
	struct varlena *a;
	struct varlena *b;

	if (oldnull || newnull)
		return oldnull != newnull;
	if (datumIsEqual(oldv, newv, col->typbyval, col->typlen))
		return false;
	if (col->typlen == -1)
	{
		/* the same value may be stored compressed, toasted or short-headed */
		a = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(oldv));
		b = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(newv));
		if (VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
			memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0)
			return false;
	}
	/* floats of other bytes may read the same in JSON: -0 and 0 */
	return !col->vo.has_float || !aa_value_same_json(&col->vo, oldv, newv);
}

/*
 * instance_id as plain text into id_buf: the key's text for a one-column
 * key, a compact JSON array for a composite one.  Returns false when the
 * table has no primary key (instance_id is null).
 */
static bool
build_instance_id(StringInfo buf, AARelInfo *ri, Datum *values, bool *nulls)
{
	int			i;

	resetStringInfo(buf);
	if (ri->npk == 0)
		return false;
	if (ri->npk == 1)
	{
		int			a = ri->pkatts[0] - 1;

		if (nulls[a])
			return false;
		aa_value_append_text(buf, &ri->cols[a].vo, &ri->cols[a].typoutput,
							 values[a]);
		return true;
	}
	aa_put_char(buf, '[');
	for (i = 0; i < ri->npk; i++)
	{
		int			a = ri->pkatts[i] - 1;

		if (i > 0)
			aa_put_char(buf, ',');
		if (nulls[a])
			aa_put_lit(buf, "null");
		else
			aa_value_append(buf, &ri->cols[a].vo, values[a]);
	}
	aa_put_char(buf, ']');
	return true;
}

/* request_id and service_name, from the session: in every kind of event. */
static void
append_request_service(StringInfo buf)
{
	aa_put_lit(buf, "\"request_id\":");
	append_setting(buf, aa_request_id);
	aa_put_lit(buf, ",\"service_name\":");
	aa_json_string(buf, aa_service_name ? aa_service_name : "",
				   aa_service_name ? strlen(aa_service_name) : 0);
}

/*
 * The keys between "message" and "event_type": request_id, service_name,
 * model (common/message.h: a header's "head" after level and name).
 */
static void
append_request_fields(StringInfo buf, AARelInfo *ri)
{
	append_request_service(buf);
	aa_put_char(buf, ',');
	aa_put(buf, ri->model_field, ri->model_field_len);
}

/*
 * Everything up to and including "instance_id", for the full format:
 * shared by row, TRUNCATE ("audit.model") and audit.config events.
 * 'tname' is the event type (plain, needs no escaping); 'id' is NULL when
 * there is no instance id.
 */
static void
append_head(StringInfo buf, AARelInfo *ri, const char *name, const char *tname,
			StringInfo id, TimestampTz ts)
{
	/* "timestamp" first: the readers rely on it (AA_TIMESTAMP_PREFIX) */
	aa_put_lit(buf, "{\"timestamp\":");
	append_timestamp(buf, ts);
	aa_put_lit(buf, ",\"level\":\"AUDIT\",\"name\":\"");
	aa_put_str(buf, name);
	aa_put_lit(buf, "\",\"message\":\"");
	aa_put_str(buf, tname);
	aa_put_lit(buf, " event by ");
	aa_put(buf, ri->model, ri->model_len);
	if (id != NULL)
	{
		aa_put_lit(buf, " (id: ");
		aa_json_string_body(buf, id->data, id->len);
		aa_put_char(buf, ')');
	}
	aa_put_lit(buf, "\",");
	append_request_fields(buf, ri);
	aa_put_lit(buf, ",\"event_type\":\"");
	aa_put_str(buf, tname);
	aa_put_lit(buf, "\",\"instance_id\":");
	if (id != NULL)
		aa_json_string(buf, id->data, id->len);
	else
		aa_put_lit(buf, "null");
}

/*
 * The event's last keys, backend_pid and txid, which change only with the
 * transaction, and the closing brace: formatted once per top-level
 * transaction.
 */
static const char *
transaction_tail(void)
{
	static FullTransactionId cached_xid = {0};
	static char tail[64];
	FullTransactionId xid = GetTopFullTransactionId();

	if (!FullTransactionIdEquals(xid, cached_xid) || tail[0] == '\0')
	{
		/* "txid" last: the signature of 0.1's readers followed it */
		snprintf(tail, sizeof(tail), ",\"backend_pid\":%d,\"txid\":" UINT64_FORMAT "}",
				 MyProcPid, U64FromFullTransactionId(xid));
		cached_xid = xid;
	}
	return tail;
}

/* user_id, user_info and extra: what the session claims (section 3). */
static void
append_claims(StringInfo buf)
{
	aa_put_lit(buf, "\"user_id\":");
	append_setting(buf, aa_user_id);
	aa_put_lit(buf, ",\"user_info\":");
	if (aa_user_info && aa_user_info[0] != '\0')
		aa_put_str(buf, aa_user_info);
	else
		aa_put_lit(buf, "null");
	aa_put_lit(buf, ",\"extra\":");
	if (aa_extra && aa_extra[0] != '\0')
		aa_put_str(buf, aa_extra);
	else
		aa_put_lit(buf, "{}");
}

/*
 * The keys after instance_repr/changes, from user_id on, and the closing
 * brace (common/message.h: a header's "tail").
 */
static void
append_context(StringInfo buf, AARelInfo *ri)
{
	append_claims(buf);
	aa_put_char(buf, ',');
	aa_put(buf, ri->where_fields, ri->where_fields_len);
	append_provenance(buf);
}

/*
 * From "db" on: who and where the server saw (database, roles, client,
 * backend, transaction), and the closing brace.
 */
static void
append_provenance(StringInfo buf)
{
	aa_put_char(buf, ',');
	aa_put_str(buf, db_field);
	aa_put_lit(buf, ",\"db_user\":");
	aa_put_str(buf, role_value(&current_role_name, GetUserId()));
	aa_put_lit(buf, ",\"session_user\":");
	aa_put_str(buf, role_value(&session_role_name, GetSessionUserId()));
	aa_put_lit(buf, ",\"application_name\":");
	append_setting(buf, application_name);
	aa_put_lit(buf, ",\"client_addr\":");
	aa_put_str(buf, client_addr_value);
	aa_put_str(buf, transaction_tail());
}

/*
 * Refuse a message larger than audit.max_event_size, before it is written:
 * the change fails (auditing fails closed), instead of the WAL getting a
 * record that the writer, or recovery, could not read back.  The names are
 * looked up only on this error path.  'ri' is the table's (NULL for an
 * application event, then named by 'app_name').
 */
static void
check_message_size(StringInfo buf, AARelInfo *ri, const char *app_name)
{
	char	   *relname;

	if ((Size) buf->len <= (Size) aa_max_event_size * 1024)
		return;
	if (ri == NULL)				/* an application event, named by its name */
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("audit event \"%s\" is too large (%d bytes)", app_name, buf->len),
				 errdetail("audit.max_event_size allows at most %d kB per event.",
						   aa_max_event_size),
				 errhint("Put less into the payload, or raise audit.max_event_size.")));
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(ri->relid)),
										 get_rel_name(ri->relid));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("audit event of table %s is too large (%d bytes)", relname, buf->len),
			 errdetail("audit.max_event_size allows at most %d kB per event; the change is not made.",
					   aa_max_event_size),
			 errhint("Exclude the large columns from auditing (activity_audit.track(..., exclude => ...)), shorten the audit.* settings, or raise audit.max_event_size.")));
}

/* Write a finished message into the WAL, transactional. */
static void
write_message(StringInfo buf)
{
#if PG_VERSION_NUM >= 170000
	LogLogicalMessage(AA_MESSAGE_PREFIX, buf->data, buf->len, true, false);
#else
	LogLogicalMessage(AA_MESSAGE_PREFIX, buf->data, buf->len, true);
#endif
}

/*
 * Sign a full-format event, which ends with its closing brace, and write it
 * (ri, app_name: see check_message_size).
 */
static void
write_event(StringInfo buf, AARelInfo *ri, const char *app_name)
{
	uint64		txid = top_txid();

	check_message_size(buf, ri, app_name);

	aa_sign_object(buf, txid, next_number(txid));
	write_message(buf);
}

/*
 * Whether the relation's last header still describes what a row written
 * now shares: the same (sub)transaction, context, roles (current and
 * session) and application_name, and few enough headers since for the writer to still
 * hold it (AA_HEADER_WINDOW), and not too many rows on it already
 * (AA_HEADER_ROWS).
 */
static bool
header_current(AARelInfo *ri, uint64 txid)
{
	const char *app = application_name ? application_name : "";

	return ri->hdr_txid == txid &&
		ri->hdr_subxid == GetCurrentSubTransactionId() &&
		ri->hdr_generation == aa_context_generation &&
		ri->hdr_role == GetUserId() &&
		ri->hdr_session_role == GetSessionUserId() &&
		headers_written - ri->hdr_serial < AA_HEADER_WINDOW &&
		ri->hdr_rows < AA_HEADER_ROWS &&
		strcmp(ri->hdr_appname, app) == 0;
}

/*
 * The number of the header that a compact row of the relation refers to:
 * the last one written for it if it is still current, else a new one
 * written now.  Called right before the row's own message, after the row's
 * values were formatted (which may run user code that changes settings).
 */
static uint64
current_header(AARelInfo *ri, uint64 txid)
{
	StringInfo	buf = &header_buf;
	const char *app = application_name ? application_name : "";
	uint64		number;

	if (header_current(ri, txid))
	{
		ri->hdr_rows++;
		return ri->hdr_counter;
	}

	if (buf->maxlen > 1024 * 1024)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pfree(buf->data);
		initStringInfo(buf);
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(buf);
	aa_put_lit(buf, AA_HEADER_OPEN "\"level\":\"AUDIT\",\"name\":\"audit.model\",");
	append_request_fields(buf, ri);
	aa_put_lit(buf, AA_HEADER_TAIL);
	append_context(buf, ri);
	aa_put_char(buf, '}');
	check_message_size(buf, ri, NULL);
	number = next_number(txid);
	aa_sign_object(buf, txid, number);
	write_message(buf);

	ri->hdr_txid = txid;
	ri->hdr_subxid = GetCurrentSubTransactionId();
	ri->hdr_generation = aa_context_generation;
	ri->hdr_role = GetUserId();
	ri->hdr_session_role = GetSessionUserId();
	ri->hdr_serial = headers_written++;
	ri->hdr_counter = number;
	ri->hdr_rows = 1;
	if (ri->hdr_appname == NULL || strcmp(ri->hdr_appname, app) != 0)
	{
		if (ri->hdr_appname)
			pfree(ri->hdr_appname);
		ri->hdr_appname = MemoryContextStrdup(ri->mcxt, app);
	}
	return number;
}

/*
 * Finish a compact row, whose own part is in buf, and write it after its
 * header (see current_header).
 */
static void
write_row(StringInfo buf, AARelInfo *ri)
{
	uint64		txid = top_txid();
	uint64		header;
	char		digits[MAXINT8LEN + 1];

	/* before the header: neither is written if the row is too large */
	check_message_size(buf, ri, NULL);
	header = current_header(ri, txid);

	aa_put_char(buf, ',');
	aa_put(buf, digits, pg_ulltoa_n(header, digits));
	aa_sign_array(buf, txid, next_number(txid));
	write_message(buf);
}

/*
 * The start of a compact row: ["<timestamp>","<event_type>",<instance_id>
 * ('id' NULL: null).
 */
static void
append_row_head(StringInfo buf, AAEventType type, StringInfo id, TimestampTz ts)
{
	aa_put_char(buf, '[');
	append_timestamp(buf, ts);
	aa_put_lit(buf, ",\"");
	aa_put_str(buf, event_type_names[type]);
	aa_put_lit(buf, "\",");
	if (id != NULL)
		aa_json_string(buf, id->data, id->len);
	else
		aa_put_lit(buf, "null");
}

/*
 * The buffers to build an event in: the reusable ones, or fresh ones (in the
 * caller's per-row context) for a nested firing, while an outer event is
 * still being built in the reusable ones (a cast function that writes to an
 * audited table, say).  A buffer that a huge row blew up is shrunk back.
 */
static void
get_buffers(bool nested, StringInfo *ev, StringInfo *id)
{
	if (!buffers_ready)
		init_session_values();
	if (nested)
	{
		*ev = makeStringInfo();
		*id = makeStringInfo();
		return;
	}
	if (event_buf.maxlen > 8 * 1024 * 1024)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pfree(event_buf.data);
		initStringInfo(&event_buf);
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(&event_buf);
	resetStringInfo(&id_buf);
	*ev = &event_buf;
	*id = &id_buf;
}

/*
 * A buffer of its own for an application or audit.config event, which may
 * be written while a row event is being built in the reusable buffers (a
 * trigger on an audited table, say); the caller frees it.
 */
static StringInfo
new_event_buffer(void)
{
	if (!buffers_ready)
		init_session_values();
	return makeStringInfo();
}

/*
 * Build and write the event of one row change.  For UPDATE, returns without
 * an event when no audited column changed, unless log_noop_updates is set.
 * The caller runs this in a memory context it resets after each row.
 */
void
aa_emit_row_event(AARelInfo *ri, AAEventType type, bool nested,
				  TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	TupleTableSlot *rowslot = (type == AA_EVENT_DELETE) ? oldslot : newslot;
	Datum	   *values;
	bool	   *nulls;
	StringInfo	buf;
	StringInfo	id;
	bool		has_id;
	bool		first;
	int			i;
	bool	   *changed = NULL;
	int		   *value_start = NULL;	/* where each changed column's new */
	int		   *value_end = NULL;	/* value is in instance_repr */
	bool		compact = (aa_wal_format == AA_WAL_FORMAT_COMPACT);
	TimestampTz ts;

	slot_getallattrs(rowslot);
	values = rowslot->tts_values;
	nulls = rowslot->tts_isnull;

	if (type == AA_EVENT_UPDATE)
	{
		bool		any = false;

		slot_getallattrs(oldslot);
		changed = palloc0(sizeof(bool) * ri->natts);
		value_start = palloc(sizeof(int) * ri->natts);
		value_end = palloc(sizeof(int) * ri->natts);
		for (i = 0; i < ri->natts; i++)
		{
			AAColumn   *col = &ri->cols[i];

			if (col->dropped || col->excluded)
				continue;
			changed[i] = column_changed(col,
										oldslot->tts_values[i], oldslot->tts_isnull[i],
										values[i], nulls[i]);
			any |= changed[i];
		}
		if (!any && !ri->log_noop_updates)
			return;
	}

	get_buffers(nested, &buf, &id);
	has_id = build_instance_id(id, ri, values, nulls);
	ts = GetCurrentTimestamp();
	if (compact)
	{
		append_row_head(buf, type, has_id ? id : NULL, ts);
		aa_put_lit(buf, ",{");
	}
	else
	{
		append_head(buf, ri, "audit.model", event_type_names[type], has_id ? id : NULL, ts);
		aa_put_lit(buf, ",\"instance_repr\":{");
	}

	first = true;
	for (i = 0; i < ri->natts; i++)
	{
		AAColumn   *col = &ri->cols[i];

		if (col->dropped || col->excluded)
			continue;
		if (!first)
			aa_put_char(buf, ',');
		first = false;
		aa_put(buf, col->key, col->keylen);
		if (changed != NULL && changed[i])
			value_start[i] = buf->len;
		append_column_value(buf, col, values[i], nulls[i]);
		if (changed != NULL && changed[i])
			value_end[i] = buf->len;
	}
	aa_put_char(buf, '}');

	if (type == AA_EVENT_UPDATE)
	{
		if (compact)
			aa_put_lit(buf, ",{");
		else
			aa_put_lit(buf, ",\"changes\":{");
		first = true;
		for (i = 0; i < ri->natts; i++)
		{
			AAColumn   *col = &ri->cols[i];

			if (!changed[i])
				continue;
			if (!first)
				aa_put_char(buf, ',');
			first = false;
			aa_put(buf, col->key, col->keylen);
			if (compact)
			{
				/* the old value only: the writer takes the new from the row */
				append_column_value(buf, col, oldslot->tts_values[i],
									oldslot->tts_isnull[i]);
				continue;
			}
			aa_put_lit(buf, "{\"old\":");
			append_column_value(buf, col, oldslot->tts_values[i],
								oldslot->tts_isnull[i]);
			aa_put_lit(buf, ",\"new\":");
			/*
			 * The new value is in instance_repr already: copy its text, after
			 * making room, since enlarging may move the buffer.
			 */
			enlargeStringInfo(buf, value_end[i] - value_start[i]);
			aa_put(buf, buf->data + value_start[i], value_end[i] - value_start[i]);
			aa_put_char(buf, '}');
		}
		aa_put_char(buf, '}');
	}

	if (compact)
		write_row(buf, ri);
	else
	{
		aa_put_char(buf, ',');
		append_context(buf, ri);
		write_event(buf, ri, NULL);
	}
}

/* Build and write the event of a TRUNCATE of the relation. */
void
aa_emit_truncate_event(AARelInfo *ri, bool nested)
{
	StringInfo	buf;
	StringInfo	id;

	TimestampTz ts = GetCurrentTimestamp();

	get_buffers(nested, &buf, &id);
	if (aa_wal_format == AA_WAL_FORMAT_COMPACT)
	{
		append_row_head(buf, AA_EVENT_TRUNCATE, NULL, ts);
		aa_put_lit(buf, ",null");
		write_row(buf, ri);
	}
	else
	{
		append_head(buf, ri, "audit.model", event_type_names[AA_EVENT_TRUNCATE], NULL, ts);
		aa_put_lit(buf, ",\"instance_repr\":null,");
		append_context(buf, ri);
		write_event(buf, ri, NULL);
	}
}

/*
 * Build and write an application event (log_event(), capture/app_event.c):
 * the keys of SPEC section 10 in order, 'members' (the payload's keys and
 * values as JSON text, "k":v,...; may be empty) after event_type, then the
 * claims and the provenance.  A full-format message of its own, signed
 * like every other: the writer delivers it with its transaction.
 */
void
aa_emit_app_event(const char *level, const char *name, const char *message,
				  const char *event_type, const char *members, int members_len)
{
	StringInfo	buf = new_event_buffer();

	aa_put_lit(buf, "{\"timestamp\":");
	append_timestamp(buf, GetCurrentTimestamp());
	aa_put_lit(buf, ",\"level\":");
	aa_json_string(buf, level, strlen(level));
	aa_put_lit(buf, ",\"name\":");
	aa_json_string(buf, name, strlen(name));
	aa_put_lit(buf, ",\"message\":");
	aa_json_string(buf, message, strlen(message));
	aa_put_char(buf, ',');
	append_request_service(buf);
	aa_put_lit(buf, ",\"event_type\":");
	aa_json_string(buf, event_type, strlen(event_type));
	aa_put_char(buf, ',');
	if (members_len > 0)
	{
		aa_put(buf, members, members_len);
		aa_put_char(buf, ',');
	}
	append_claims(buf);
	append_provenance(buf);
	write_event(buf, NULL, name);
	pfree(buf->data);
	pfree(buf);
}

/*
 * Build and write an audit.config event about a tracked table (SPEC 9,
 * capture/config_event.c): the keys of a row event, with instance_id null
 * and instance_repr 'repr' (a JSON object's text, or NULL for null).  A
 * full-format message in every WAL format, signed and transactional like
 * row events: a rolled-back DROP TABLE leaves none.
 */
void
aa_emit_config_event(AARelInfo *ri, const char *event_type, const char *repr)
{
	StringInfo	buf = new_event_buffer();

	append_head(buf, ri, "audit.config", event_type, NULL, GetCurrentTimestamp());
	aa_put_lit(buf, ",\"instance_repr\":");
	if (repr)
		aa_put_str(buf, repr);
	else
		aa_put_lit(buf, "null");
	aa_put_char(buf, ',');
	append_context(buf, ri);
	write_event(buf, ri, NULL);
	pfree(buf->data);
	pfree(buf);
}

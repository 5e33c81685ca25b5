/*-------------------------------------------------------------------------
 *
 * log_stream.c
 *		The SQL readers of the delivered stream's events: log_stream() and
 *		history() (SPEC section 6).
 *
 * Both are value-per-call set-returning functions: the open file and its
 * read buffer live in the multi-call memory context and each call parses
 * lines until it has one row to return, so a stream of any length is
 * returned without being held in memory.  Lines that cannot match are
 * skipped before parsing where their text tells (the leading "timestamp",
 * the "table":"<name>" form; see common/stream_format.h).
 *
 * The stream holds every database's events.  A caller who could not read
 * the files anyway (neither superuser nor member of pg_read_server_files)
 * sees only the current database's: events whose "db" names it, and the
 * stream's own lines that name no database (a gap in the WAL, say).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/json_out.h"
#include "common/stream_format.h"
#include "guc.h"
#include "reader/reader.h"

PG_FUNCTION_INFO_V1(activity_audit_log_stream);
PG_FUNCTION_INFO_V1(activity_audit_history);

#define LOG_STREAM_COLS 10

/* What log_stream()/history() keep between calls. */
typedef struct StreamScan
{
	LineReader	reader;
	MemoryContext linecxt;		/* reset for every line parsed */
	bool		has_since;
	bool		has_until;
	TimestampTz since;
	TimestampTz until;
	/* history(): the row searched for; NULL table = every event */
	char	   *schema;
	char	   *table;
	char	   *db;
	char	   *instance_id;
	char	   *needle;			/* "table":"<name>" to pre-filter lines, or NULL */
	char	   *only_db;		/* the caller may see this database's only */
	ExprContext *econtext;		/* where stream_scan_shutdown is registered */
} StreamScan;

/*
 * Parse the events' own timestamp form, "YYYY-MM-DDTHH:MM:SS.ffffffZ",
 * quickly; anything else goes through timestamptz_in().
 */
static TimestampTz
parse_event_time(const char *s, int len)
{
	TimestampTz result;

	if (aa_parse_utc(s, len, &result))
		return result;
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(pnstrdup(s, len)),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/* A top-level key of the event, or NULL when absent. */
static JsonbValue *
event_key(Jsonb *jb, const char *key)
{
	return getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
}

/* A key's value as text: strings as they are, null/absent as SQL NULL. */
static Datum
event_text(Jsonb *jb, const char *key, bool *isnull)
{
	JsonbValue *v = event_key(jb, key);

	*isnull = false;
	if (v == NULL || v->type == jbvNull)
	{
		*isnull = true;
		return (Datum) 0;
	}
	if (v->type == jbvString)
		return PointerGetDatum(cstring_to_text_with_len(v->val.string.val,
														v->val.string.len));
	if (v->type == jbvNumeric)
		return DirectFunctionCall1(textin,
								   DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
	if (v->type == jbvBool)
		return PointerGetDatum(cstring_to_text(v->val.boolean ? "true" : "false"));
	/* a container: its JSON text */
	{
		Jsonb	   *sub = JsonbValueToJsonb(v);

		return PointerGetDatum(cstring_to_text(JsonbToCString(NULL, &sub->root,
															  VARSIZE(sub))));
	}
}

/* Whether a string key of the event equals s (false for null/absent). */
static bool
event_key_equals(Jsonb *jb, const char *key, const char *s)
{
	JsonbValue *v = event_key(jb, key);

	return v != NULL && v->type == jbvString &&
		v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

/*
 * Whether a caller limited to database 'db' may see the line: its "db"
 * names that database, or it has none (the stream's own lines).
 */
static bool
visible_in_db(Jsonb *jb, const char *db)
{
	return event_key(jb, "db") == NULL || event_key_equals(jb, "db", db);
}

/*
 * The event's "timestamp" without parsing the whole line when it is the
 * first key, as the trigger writes it; otherwise from the parsed event.
 * false when the line has none that can be read.
 */
static bool
line_time(const char *line, size_t len, Jsonb *jb, TimestampTz *ts)
{
	static const char key[] = AA_TIMESTAMP_PREFIX;
	const size_t klen = sizeof(key) - 1;

	if (len > klen + 28 && memcmp(line, key, klen) == 0 &&
		line[klen + 27] == '"')
	{
		*ts = parse_event_time(line + klen, 27);
		return true;
	}
	if (jb)
	{
		JsonbValue *v = event_key(jb, "timestamp");

		if (v && v->type == jbvString)
		{
			*ts = parse_event_time(v->val.string.val, v->val.string.len);
			return true;
		}
	}
	return false;
}

/* Close the scan's file when the query is done with the function early. */
static void
stream_scan_shutdown(Datum arg)
{
	StreamScan *scan = (StreamScan *) DatumGetPointer(arg);

	aa_reader_close_file(&scan->reader);
}

/*
 * Start a scan for log_stream() or history() in the multi-call context.
 */
static StreamScan *
stream_scan_begin(FunctionCallInfo fcinfo, FuncCallContext *funcctx)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
	StreamScan *scan = palloc0(sizeof(StreamScan));
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record"),
				 errhint("Call it in the FROM clause: SELECT * FROM activity_audit.log_stream().")));
	funcctx->tuple_desc = BlessTupleDesc(tupdesc);
	if (!superuser() &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		scan->only_db = get_database_name(MyDatabaseId);
	aa_reader_init(&scan->reader);
	scan->linecxt = AllocSetContextCreate(funcctx->multi_call_memory_ctx,
										  "activity_audit stream line",
										  ALLOCSET_DEFAULT_SIZES);
	if (rsinfo && IsA(rsinfo, ReturnSetInfo) && rsinfo->econtext)
	{
		scan->econtext = rsinfo->econtext;
		RegisterExprContextCallback(rsinfo->econtext, stream_scan_shutdown,
									PointerGetDatum(scan));
	}
	MemoryContextSwitchTo(old);
	funcctx->user_fctx = scan;
	return scan;
}

/*
 * The next row of the scan as a tuple in the caller's memory context, or
 * NULL at the end of the stream.  Lines that do not match are parsed in a
 * context reset for every line, so skipping is free of memory growth.
 */
static HeapTuple
stream_scan_next(StreamScan *scan, TupleDesc tupdesc)
{
	MemoryContext callcxt = CurrentMemoryContext;
	char	   *line;
	size_t		len;

	while (aa_reader_next_line(&scan->reader, &line, &len))
	{
		Datum		values[LOG_STREAM_COLS];
		bool		nulls[LOG_STREAM_COLS];
		TimestampTz ts = 0;
		bool		have_ts;
		bool		readable;
		Jsonb	   *jb;
		JsonbValue *v;
		MemoryContext old;
		HeapTuple	tuple;

		MemoryContextReset(scan->linecxt);
		if (len == 0)
			continue;
		old = MemoryContextSwitchTo(scan->linecxt);

		/* cheap rejections before parsing the line */
		have_ts = line_time(line, len, NULL, &ts);
		if (have_ts &&
			((scan->has_since && ts < scan->since) ||
			 (scan->has_until && ts >= scan->until)))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		if (scan->needle && strstr(line, scan->needle) == NULL)
		{
			MemoryContextSwitchTo(old);
			continue;
		}

		jb = aa_line_to_jsonb(line, len, scan->reader.files[scan->reader.fileno],
							  scan->reader.lineno, &readable);
		if (!readable && (scan->table || scan->has_since || scan->has_until ||
						  scan->only_db))
		{
			/*
			 * It cannot be placed in a window nor named a row's, nor shown
			 * to a caller who may see one database's events only.
			 */
			MemoryContextSwitchTo(old);
			continue;
		}
		if (scan->only_db && !visible_in_db(jb, scan->only_db))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		if (!have_ts)
			have_ts = line_time(line, len, jb, &ts);
		if ((scan->has_since || scan->has_until) &&
			(!have_ts ||
			 (scan->has_since && ts < scan->since) ||
			 (scan->has_until && ts >= scan->until)))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		if (scan->table &&
			!(event_key_equals(jb, "table", scan->table) &&
			  event_key_equals(jb, "schema", scan->schema) &&
			  event_key_equals(jb, "db", scan->db) &&
			  event_key_equals(jb, "instance_id", scan->instance_id)))
		{
			MemoryContextSwitchTo(old);
			continue;
		}

		memset(nulls, 0, sizeof(nulls));
		v = event_key(jb, "seq");
		if (v && v->type == jbvNumeric)
			values[0] = DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric));
		else
			nulls[0] = true;
		values[1] = TimestampTzGetDatum(ts);
		nulls[1] = !have_ts;
		values[2] = event_text(jb, "event_type", &nulls[2]);
		values[3] = event_text(jb, "schema", &nulls[3]);
		values[4] = event_text(jb, "table", &nulls[4]);
		values[5] = event_text(jb, "model", &nulls[5]);
		values[6] = event_text(jb, "instance_id", &nulls[6]);
		values[7] = event_text(jb, "user_id", &nulls[7]);
		values[8] = event_text(jb, "request_id", &nulls[8]);
		values[9] = JsonbPGetDatum(jb);

		MemoryContextSwitchTo(callcxt);
		tuple = heap_form_tuple(tupdesc, values, nulls);
		return tuple;
	}
	/*
	 * The end: the scan's memory goes with SRF_RETURN_DONE, so the shutdown
	 * callback, which would read it when the query ends, must go first.
	 */
	aa_reader_close_file(&scan->reader);
	if (scan->econtext)
	{
		UnregisterExprContextCallback(scan->econtext, stream_scan_shutdown,
									  PointerGetDatum(scan));
		scan->econtext = NULL;
	}
	return NULL;
}

/*
 * The time a stream file was started, from its name and audit.log_filename
 * (a strftime pattern in UTC); false if the name does not parse.
 */
static bool
file_start_time(const char *name, TimestampTz *start)
{
	struct tm	tm;
	const char *end;
	time_t		t;

	memset(&tm, 0, sizeof(tm));
	end = strptime(name, aa_log_filename, &tm);
	if (end == NULL || *end != '\0')
		return false;
	t = timegm(&tm);
	if (t == (time_t) -1)
		return false;
	*start = time_t_to_timestamptz((pg_time_t) t);
	return true;
}

/*
 * Skip the files that cannot hold an event at or after 'since'.  Every
 * event of a file happened before its transaction committed, and the
 * writer starts the next file only after delivering that commit: so all
 * timestamps in file i are earlier than the start of file i+1, which its
 * name gives to the second.  Files whose successor started a full second
 * or more before 'since' are not opened at all.
 */
static void
skip_files_before(LineReader *r, TimestampTz since)
{
	int			first = 0;
	int			i;

	for (i = 0; i + 1 < r->nfiles; i++)
	{
		TimestampTz next_start;

		if (!file_start_time(r->files[i + 1], &next_start) ||
			next_start + USECS_PER_SEC > since)
			break;
		first = i + 1;
	}
	r->fileno = first - 1;
}

/*
 * activity_audit.log_stream(since, until): every complete line of the file
 * sink, in stream order, with "timestamp" in [since, until) when given.
 */
Datum
activity_audit_log_stream(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	StreamScan *scan;
	HeapTuple	tuple;

	if (SRF_IS_FIRSTCALL())
	{
		funcctx = SRF_FIRSTCALL_INIT();
		scan = stream_scan_begin(fcinfo, funcctx);
		if (!PG_ARGISNULL(0))
		{
			scan->has_since = true;
			scan->since = PG_GETARG_TIMESTAMPTZ(0);
			skip_files_before(&scan->reader, scan->since);
		}
		if (!PG_ARGISNULL(1))
		{
			scan->has_until = true;
			scan->until = PG_GETARG_TIMESTAMPTZ(1);
		}
	}
	funcctx = SRF_PERCALL_SETUP();
	scan = (StreamScan *) funcctx->user_fctx;
	tuple = stream_scan_next(scan, funcctx->tuple_desc);
	if (tuple)
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
	SRF_RETURN_DONE(funcctx);
}

/*
 * activity_audit.history(target, instance_id): the events of one row of
 * one table of the current database, in stream order.
 */
Datum
activity_audit_history(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	StreamScan *scan;
	HeapTuple	tuple;

	if (SRF_IS_FIRSTCALL())
	{
		Oid			relid = PG_GETARG_OID(0);
		char	   *relname;
		char	   *nspname;
		MemoryContext old;
		bool		plain = true;
		const char *p;

		relname = get_rel_name(relid);
		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid),
					 errhint("Pass the table as a name, e.g. history('public.patients', '42').")));
		nspname = get_namespace_name(get_rel_namespace(relid));

		funcctx = SRF_FIRSTCALL_INIT();
		scan = stream_scan_begin(fcinfo, funcctx);
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		scan->table = pstrdup(relname);
		scan->schema = pstrdup(nspname);
		scan->db = get_database_name(MyDatabaseId);
		scan->instance_id = text_to_cstring(PG_GETARG_TEXT_PP(1));

		/*
		 * Lines of other tables are skipped without parsing when the name
		 * needs no JSON escaping: the event then always holds it verbatim
		 * as "table":"<name>" (a column of that name may give a false
		 * match, which the full check below rejects).
		 */
		for (p = relname; *p; p++)
			if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
				plain = false;
		if (plain)
			scan->needle = psprintf("\"table\":\"%s\"", relname);
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	scan = (StreamScan *) funcctx->user_fctx;
	tuple = stream_scan_next(scan, funcctx->tuple_desc);
	if (tuple)
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
	SRF_RETURN_DONE(funcctx);
}

/*-------------------------------------------------------------------------
 *
 * reader.c
 *		The SQL readers of the delivered stream: log_stream(), history()
 *		and verify() (SPEC section 6).
 *
 * The file sink's files (regular files ending in ".jsonl" in
 * audit.log_directory, relative to the data directory unless absolute) are
 * read in name order, which is stream order.  Only complete lines count: a
 * last line without its newline may be one the writer is still appending,
 * so it is never returned nor checked.  The files are read by this code
 * itself, not through pg_read_file(), so EXECUTE on these functions (which
 * PUBLIC does not have) is the only privilege a reader needs.
 *
 * log_stream() and history() are value-per-call set-returning functions:
 * the open file and its read buffer live in the multi-call memory context
 * and each call parses lines until it has one row to return, so a stream of
 * any length is returned without being held in memory.  verify() streams
 * the files through SHA-256 line by line and returns one row.
 *
 * This file must not write to the stream, nor depend on the writer's
 * state (the files are the record); it only reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "activity_audit.h"
#include "common/stream_format.h"
#include "guc.h"
#include "writer/writer.h"

PG_FUNCTION_INFO_V1(activity_audit_log_stream);
PG_FUNCTION_INFO_V1(activity_audit_history);
PG_FUNCTION_INFO_V1(activity_audit_verify);

#define SEQ_KEY			",\"seq\":"
/* the trailer before the chain keys (seq, lsn, committed_at) is short */
#define TRAILER_MAX		160

#define READ_CHUNK		(1024 * 1024)

#define LOG_STREAM_COLS 10

/*
 * Reading the stream's files one complete line at a time.  The buffer
 * holds buf[start..end) of unread bytes of the current file; it grows only
 * for a line longer than itself.
 */
typedef struct LineReader
{
	char	  **files;			/* names (no directory), in stream order */
	int			nfiles;
	int			fileno;			/* index of the open file; -1 before */
	char	   *dir;			/* the directory, as configured */
	int			fd;				/* open file, or -1 */
	char	   *path;			/* its path */
	int64		lineno;			/* line number in the current file */
	char	   *buf;
	size_t		bufsize;
	size_t		start;
	size_t		end;
	bool		eof;			/* read() of the current file returned 0 */
	bool		partial;		/* the file ended with an incomplete line */
} LineReader;

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
} StreamScan;

/*
 * The configured directory of the file sink.  The library must have been
 * loaded for audit.log_directory to exist (it always is once preloaded).
 */
static char *
stream_directory(void)
{
	if (aa_log_directory == NULL || aa_log_directory[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit.log_directory is empty"),
				 errhint("Set audit.log_directory to the file sink's directory.")));
	return aa_log_directory;
}

/* qsort comparator: file names in byte order, which is stream order. */
static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The regular files ending in ".jsonl" of the directory, sorted by name.
 * A directory that does not exist yet holds no events: empty list.
 */
static void
list_stream_files(LineReader *r)
{
	DIR		   *d;
	struct dirent *de;
	int			cap = 16;

	r->dir = pstrdup(stream_directory());
	r->files = palloc(cap * sizeof(char *));
	r->nfiles = 0;

	d = AllocateDir(r->dir);
	if (d == NULL)
	{
		if (errno == ENOENT)
			return;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open audit log directory \"%s\": %m", r->dir),
				 errhint("Check audit.log_directory and the directory's permissions.")));
	}
	while ((de = ReadDir(d, r->dir)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		char	   *path;
		struct stat st;

		if (len <= 6 || strcmp(de->d_name + len - 6, ".jsonl") != 0)
			continue;
		path = psprintf("%s/%s", r->dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		{
			pfree(path);
			continue;
		}
		pfree(path);
		if (r->nfiles == cap)
		{
			cap *= 2;
			r->files = repalloc(r->files, cap * sizeof(char *));
		}
		r->files[r->nfiles++] = pstrdup(de->d_name);
	}
	FreeDir(d);
	if (r->nfiles > 1)
		qsort(r->files, r->nfiles, sizeof(char *), name_cmp);
}

/* Set up a reader over the current stream files (no file open yet). */
static void
reader_init(LineReader *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->fileno = -1;
	r->bufsize = READ_CHUNK;
	r->buf = palloc(r->bufsize);
	list_stream_files(r);
}

/* Close the current file, if any. */
static void
reader_close_file(LineReader *r)
{
	if (r->fd >= 0)
	{
		CloseTransientFile(r->fd);
		r->fd = -1;
	}
}

/*
 * Open the next file of the stream; false when there is none left.
 */
static bool
reader_next_file(LineReader *r)
{
	reader_close_file(r);
	if (r->fileno + 1 >= r->nfiles)
		return false;
	r->fileno++;
	if (r->path)
		pfree(r->path);
	r->path = psprintf("%s/%s", r->dir, r->files[r->fileno]);
	r->fd = OpenTransientFile(r->path, O_RDONLY | PG_BINARY);
	if (r->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open audit log file \"%s\": %m", r->path),
				 errhint("The file was listed in audit.log_directory a moment ago; "
						 "audit files must not be removed or made unreadable while the stream is read.")));
	r->start = r->end = 0;
	r->eof = false;
	r->partial = false;
	r->lineno = 0;
	return true;
}

/*
 * The next complete line of the current file, without its newline, NUL-
 * terminated in place (*line, *len); false at the end of the file.  Bytes
 * after the file's last newline are not a line: r->partial tells there
 * were some.
 */
static bool
reader_line_in_file(LineReader *r, char **line, size_t *len)
{
	for (;;)
	{
		char	   *nl = NULL;

		if (r->end > r->start)
			nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl)
		{
			*line = r->buf + r->start;
			*len = nl - *line;
			*nl = '\0';
			r->start = (nl - r->buf) + 1;
			r->lineno++;
			return true;
		}
		if (r->eof)
		{
			r->partial = r->end > r->start;
			return false;
		}
		/* move the unfinished line to the front; grow for a long one */
		if (r->start > 0)
		{
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->bufsize - r->end < READ_CHUNK / 2)
		{
			r->bufsize *= 2;
			r->buf = repalloc_huge(r->buf, r->bufsize);
		}
		{
			ssize_t		n;

			CHECK_FOR_INTERRUPTS();
			n = read(r->fd, r->buf + r->end, r->bufsize - r->end);
			if (n < 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read audit log file \"%s\": %m", r->path),
						 errhint("Check the file's permissions and the disk.")));
			if (n == 0)
				r->eof = true;
			r->end += n;
		}
	}
}

/*
 * The next complete line of the stream, across files; false at the end.
 */
static bool
reader_next_line(LineReader *r, char **line, size_t *len)
{
	for (;;)
	{
		if (r->fd >= 0 && reader_line_in_file(r, line, len))
			return true;
		if (!reader_next_file(r))
			return false;
	}
}

/*
 * Parse the events' own timestamp form, "YYYY-MM-DDTHH:MM:SS.ffffffZ",
 * quickly; anything else goes through timestamptz_in().
 */
static TimestampTz
parse_event_time(const char *s, int len)
{
	struct pg_tm tm;
	fsec_t		fsec = 0;
	TimestampTz result;
	int			i;

#define D(p) (s[p] - '0')
	if (len == 27 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
		s[13] == ':' && s[16] == ':' && s[19] == '.' && s[26] == 'Z')
	{
		static const int digits[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15,
		17, 18, 20, 21, 22, 23, 24, 25};
		bool		ok = true;

		for (i = 0; i < lengthof(digits); i++)
			if (s[digits[i]] < '0' || s[digits[i]] > '9')
				ok = false;
		if (ok)
		{
			memset(&tm, 0, sizeof(tm));
			tm.tm_year = D(0) * 1000 + D(1) * 100 + D(2) * 10 + D(3);
			tm.tm_mon = D(5) * 10 + D(6);
			tm.tm_mday = D(8) * 10 + D(9);
			tm.tm_hour = D(11) * 10 + D(12);
			tm.tm_min = D(14) * 10 + D(15);
			tm.tm_sec = D(17) * 10 + D(18);
			for (i = 20; i < 26; i++)
				fsec = fsec * 10 + D(i);
			if (tm.tm_mon >= 1 && tm.tm_mon <= 12 && tm.tm_mday >= 1 &&
				tm.tm_mday <= day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] &&
				tm.tm_hour < 24 && tm.tm_min < 60 && tm.tm_sec < 60 &&
				tm2timestamp(&tm, fsec, NULL, &result) == 0)
				return result;
		}
	}
#undef D
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
 * The event's "timestamp" without parsing the whole line when it is the
 * first key, as the trigger writes it; otherwise from the parsed event.
 * false when the line has none that can be read.
 */
static bool
line_time(const char *line, size_t len, Jsonb *jb, TimestampTz *ts)
{
	static const char key[] = "{\"timestamp\":\"";
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

	reader_close_file(&scan->reader);
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
	reader_init(&scan->reader);
	scan->linecxt = AllocSetContextCreate(funcctx->multi_call_memory_ctx,
										  "activity_audit stream line",
										  ALLOCSET_DEFAULT_SIZES);
	if (rsinfo && IsA(rsinfo, ReturnSetInfo) && rsinfo->econtext)
		RegisterExprContextCallback(rsinfo->econtext, stream_scan_shutdown,
									PointerGetDatum(scan));
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

	while (reader_next_line(&scan->reader, &line, &len))
	{
		Datum		values[LOG_STREAM_COLS];
		bool		nulls[LOG_STREAM_COLS];
		TimestampTz ts = 0;
		bool		have_ts;
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

		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(line)));
		if (!JB_ROOT_IS_OBJECT(jb))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("line %lld of audit log file \"%s\" is not a JSON object",
							(long long) scan->reader.lineno, scan->reader.path),
					 errhint("Run activity_audit.verify() to check the stream.")));
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
		(void) old;
		return tuple;
	}
	reader_close_file(&scan->reader);
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

/*
 * The line's "seq" (the last top-level ,"seq": key, in the trailer just
 * before the chain keys, which start at `cut`); false if there is none.
 * A raw '"' never occurs inside a JSON string, so ,"seq": in the text is
 * always a key.
 */
static bool
line_seq(const char *line, size_t cut, int64 *seq)
{
	const size_t klen = sizeof(SEQ_KEY) - 1;
	size_t		lo = cut > TRAILER_MAX ? cut - TRAILER_MAX : 0;
	size_t		i;

	if (cut < klen)
		return false;
	for (i = cut - klen + 1; i-- > lo;)
	{
		if (memcmp(line + i, SEQ_KEY, klen) == 0)
		{
			const char *p = line + i + klen;
			int64		v = 0;
			int			n = 0;

			while (p < line + cut && *p >= '0' && *p <= '9' && n < 19)
			{
				v = v * 10 + (*p++ - '0');
				n++;
			}
			if (n == 0 || (p < line + cut && *p != ','))
				return false;
			*seq = v;
			return true;
		}
	}
	return false;
}

/*
 * activity_audit.verify(): recompute the hash chain over every file of the
 * stream (SPEC section 6) and report the first event that breaks it.
 *
 * first_bad_seq is the seq the first failing line should have had: every
 * event before it is proven intact.  events counts every complete line of
 * every file (also those after a break).
 */
Datum
activity_audit_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LineReader	r;
	char		prev[AA_HASH_HEX_LEN + 1];
	char		computed[AA_HASH_HEX_LEN + 1];
	int64		expect = 1;
	int64		events = 0;
	char	   *detail = NULL;
	int64		bad_seq = 0;
	char	   *line;
	size_t		len;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	reader_init(&r);
	strcpy(prev, AA_ZERO_HASH);


	for (;;)
	{
		bool		got;
		size_t		cut;
		int64		seq;
		const char *line_prev;
		const char *line_hash;

		/* next line; a file other than the last must end with a newline */
		got = false;
		while (!got)
		{
			if (r.fd >= 0 && reader_line_in_file(&r, &line, &len))
			{
				got = true;
				break;
			}
			if (r.fd >= 0 && r.partial && r.fileno < r.nfiles - 1 && detail == NULL)
			{
				bad_seq = expect;
				detail = psprintf("file %s ends with an incomplete line (after seq " INT64_FORMAT ")",
								  r.files[r.fileno], expect - 1);
			}
			if (!reader_next_file(&r))
				break;
		}
		if (!got)
			break;
		events++;
		if (detail)
			continue;			/* only counting after the first break */

		if (len < (size_t) AA_CHAIN_SUFFIX_LEN ||
			memcmp(line + len - AA_CHAIN_SUFFIX_LEN, AA_PREV_HASH_KEY, sizeof(AA_PREV_HASH_KEY) - 1) != 0 ||
			memcmp(line + len - AA_HASH_HEX_LEN - 2 - (sizeof(AA_HASH_KEY) - 1), AA_HASH_KEY, sizeof(AA_HASH_KEY) - 1) != 0 ||
			line[len - 2] != '"' || line[len - 1] != '}' ||
			!aa_is_hash_hex(line + len - AA_CHAIN_SUFFIX_LEN + sizeof(AA_PREV_HASH_KEY) - 1) ||
			!aa_is_hash_hex(line + len - AA_HASH_HEX_LEN - 2))
		{
			bad_seq = expect;
			detail = psprintf("file %s line %lld (where seq " INT64_FORMAT " should be): "
							  "not a stream line: it does not end with the \"prev_hash\" and \"hash\" keys",
							  r.files[r.fileno], (long long) r.lineno, expect);
			continue;
		}
		cut = len - AA_CHAIN_SUFFIX_LEN;
		line_prev = line + cut + sizeof(AA_PREV_HASH_KEY) - 1;
		line_hash = line + len - AA_HASH_HEX_LEN - 2;

		/* the line's own hash: catches any edit of its text */
		aa_chain_hash(line_prev, line, cut, computed);
		if (memcmp(computed, line_hash, AA_HASH_HEX_LEN) != 0)
		{
			bad_seq = expect;
			detail = psprintf("file %s line %lld (where seq " INT64_FORMAT " should be): "
							  "hash does not match the line's text: the line was edited",
							  r.files[r.fileno], (long long) r.lineno, expect);
			continue;
		}

		if (!line_seq(line, cut, &seq))
		{
			bad_seq = expect;
			detail = psprintf("file %s line %lld (where seq " INT64_FORMAT " should be): "
							  "the line has no \"seq\" key",
							  r.files[r.fileno], (long long) r.lineno, expect);
			continue;
		}
		if (seq != expect)
		{
			bool		first_in_file = r.lineno == 1;

			bad_seq = expect;
			if (seq > expect)
				detail = psprintf("file %s line %lld: seq " INT64_FORMAT " where seq " INT64_FORMAT " should be: "
								  "%s" INT64_FORMAT " event(s) missing (a line deleted or moved%s)",
								  r.files[r.fileno], (long long) r.lineno, seq, expect,
								  expect == 1 ? "the stream does not start at seq 1: " : "",
								  seq - expect,
								  first_in_file && r.fileno > 0 ?
								  ", or a file missing before this one" :
								  first_in_file && expect == 1 ? ", or the first file missing" : "");
			else
				detail = psprintf("file %s line %lld: seq " INT64_FORMAT " where seq " INT64_FORMAT " should be: "
								  "a line repeated, inserted or moved",
								  r.files[r.fileno], (long long) r.lineno, seq, expect);
			continue;
		}
		if (memcmp(line_prev, prev, AA_HASH_HEX_LEN) != 0)
		{
			bad_seq = expect;
			if (expect == 1)
				detail = psprintf("file %s line %lld (seq 1): prev_hash is not 64 zeros",
								  r.files[r.fileno], (long long) r.lineno);
			else
				detail = psprintf("file %s line %lld (seq " INT64_FORMAT "): prev_hash is not the hash of seq " INT64_FORMAT
								  ": a line before it was replaced, or this one was forged",
								  r.files[r.fileno], (long long) r.lineno, expect, expect - 1);
			continue;
		}
		memcpy(prev, line_hash, AA_HASH_HEX_LEN);
		expect++;
	}
	reader_close_file(&r);

	values[0] = BoolGetDatum(detail == NULL);
	values[1] = Int64GetDatum(events);
	if (detail)
	{
		values[2] = Int64GetDatum(bad_seq);
		values[3] = PointerGetDatum(cstring_to_text(detail));
	}
	else
	{
		nulls[2] = true;
		if (events == 0)
			values[3] = PointerGetDatum(cstring_to_text(r.nfiles == 0 ?
														"no audit files" :
														"no events"));
		else
			values[3] = PointerGetDatum(cstring_to_text(psprintf("seq 1 to " INT64_FORMAT " intact in %d file(s)",
																 events, r.nfiles)));
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

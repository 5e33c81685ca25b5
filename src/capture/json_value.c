/*-------------------------------------------------------------------------
 *
 * json_value.c
 *		Column values to JSON text, exactly as to_jsonb() would see them.
 *
 * to_jsonb() is the contract's oracle for instance_repr and changes, so the
 * classification here follows jsonb_categorize_type(): domains are looked
 * through, numbers stay numbers when their text is a valid JSON number
 * (floats written as jsonb prints them, see json_number.c),
 * date/time types use the JSON date encoding, json and jsonb are embedded,
 * arrays and composites nest, user types with a cast to json use it, and
 * everything else becomes its output function's text as a JSON string.
 *
 * Classification happens once per column (aa_value_out_init, called while a
 * relation's cache entry is built); aa_value_append does no catalog work.
 *
 * Output is always pure ASCII on one line: non-ASCII characters are written
 * as \uXXXX escapes (as Python's json.dumps does by default), so an event
 * reads the same whatever the encoding of whoever consumes it.
 *
 * This file must not know about events, triggers or relations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "parser/parse_coerce.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/json_out.h"
#include "common/strbuf.h"

/* pg_ltoa and pg_lltoa return the length only since PostgreSQL 14. */
#if PG_VERSION_NUM >= 140000
#define int32_to_text(v, buf)	pg_ltoa((v), (buf))
#define int64_to_text(v, buf)	pg_lltoa((v), (buf))
#else
#define int32_to_text(v, buf)	(pg_ltoa((v), (buf)), (int) strlen(buf))
#define int64_to_text(v, buf)	(pg_lltoa((v), (buf)), (int) strlen(buf))
#endif

/* Bytes that cannot be copied verbatim into a JSON string. */
static bool escape_needed[256];
static bool escape_table_ready = false;

static const char hexdigit[] = "0123456789abcdef";

/*
 * Fill the lookup table on first use; a table lets the hot loop copy runs of
 * plain characters without a branch per character class.
 */
static void
init_escape_table(void)
{
	int			c;

	for (c = 0; c < 256; c++)
		escape_needed[c] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\' ||
							 c >= 0x80);
	escape_table_ready = true;
}

/* Write one \uXXXX escape. */
static inline void
append_u_escape(StringInfo buf, unsigned int code)
{
	char		esc[6];

	esc[0] = '\\';
	esc[1] = 'u';
	esc[2] = hexdigit[(code >> 12) & 0xF];
	esc[3] = hexdigit[(code >> 8) & 0xF];
	esc[4] = hexdigit[(code >> 4) & 0xF];
	esc[5] = hexdigit[code & 0xF];
	aa_put(buf, esc, 6);
}

/*
 * Whether any of the eight bytes at p needs escaping: below 0x20, '"', '\\',
 * DEL or non-ASCII.  Word-at-a-time tests (the "has zero byte" idiom) are
 * exact about whether some byte matches, which is all the caller needs.
 */
static inline bool
chunk_needs_escape(const unsigned char *p)
{
	const uint64 ones = UINT64CONST(0x0101010101010101);
	const uint64 highs = UINT64CONST(0x8080808080808080);
	uint64		v;
	uint64		quote;
	uint64		backslash;
	uint64		del;

	memcpy(&v, p, sizeof(v));
	quote = v ^ (ones * '"');
	backslash = v ^ (ones * '\\');
	del = v ^ (ones * 0x7f);
	return (((v - ones * 0x20) & ~v) |
			((quote - ones) & ~quote) |
			((backslash - ones) & ~backslash) |
			((del - ones) & ~del) |
			v) & highs;
}

/*
 * Escape one non-ASCII UTF-8 sequence starting at s (at most 'remain' bytes)
 * as \u escapes, using a surrogate pair beyond the BMP.  Returns the bytes
 * consumed.  A byte that does not start a legal sequence (possible only in a
 * SQL_ASCII database) is written as the code point of the same value, so
 * nothing is dropped and the output stays valid JSON.
 */
static int
append_non_ascii(StringInfo buf, const unsigned char *s, int remain)
{
	int			len = pg_utf_mblen(s);
	pg_wchar	code;

	if (len > remain || !pg_utf8_islegal(s, len))
	{
		append_u_escape(buf, s[0]);
		return 1;
	}
	code = utf8_to_unicode(s);
	if (code > 0xFFFF)
	{
		code -= 0x10000;
		append_u_escape(buf, 0xD800 + (code >> 10));
		append_u_escape(buf, 0xDC00 + (code & 0x3FF));
	}
	else
		append_u_escape(buf, code);
	return len;
}

/*
 * Text in the server encoding, converted to UTF-8 when it is neither UTF-8
 * nor SQL_ASCII (whose bytes have no defined meaning to convert from).
 */
static const char *
to_utf8(const char *s, int *len)
{
	static int	enc = -1;		/* a backend's database never changes */
	char	   *conv;

	if (enc < 0 && OidIsValid(MyDatabaseId))
		enc = GetDatabaseEncoding();
	else if (enc < 0)
		return s;				/* the postmaster, loading settings */

	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
		return s;
	conv = pg_server_to_any(s, *len, PG_UTF8);
	if (conv != s)
		*len = strlen(conv);
	return conv;
}

/*
 * Append the body of a JSON string (no surrounding quotes) for 'len' bytes
 * of server-encoded text.  Used directly where a string is assembled from
 * several pieces, as in the event's message.
 */
void
aa_json_string_body(StringInfo buf, const char *s, int len)
{
	const unsigned char *p;
	const unsigned char *end;

	if (!escape_table_ready)
		init_escape_table();
	s = to_utf8(s, &len);
	p = (const unsigned char *) s;
	end = p + len;
	while (p < end)
	{
		const unsigned char *run = p;

		/* skip plain characters eight at a time, then one at a time */
		while (end - p >= 8 && !chunk_needs_escape(p))
			p += 8;
		while (p < end && !escape_needed[*p])
			p++;
		if (p > run)
			aa_put(buf, (const char *) run, p - run);
		if (p >= end)
			break;
		switch (*p)
		{
			case '"':
				aa_put_lit(buf, "\\\"");
				break;
			case '\\':
				aa_put_lit(buf, "\\\\");
				break;
			case '\b':
				aa_put_lit(buf, "\\b");
				break;
			case '\f':
				aa_put_lit(buf, "\\f");
				break;
			case '\n':
				aa_put_lit(buf, "\\n");
				break;
			case '\r':
				aa_put_lit(buf, "\\r");
				break;
			case '\t':
				aa_put_lit(buf, "\\t");
				break;
			default:
				if (*p < 0x80)
				{
					append_u_escape(buf, *p);
					break;
				}
				p += append_non_ascii(buf, p, end - p);
				continue;
		}
		p++;
	}
}

/* Append a quoted JSON string. */
void
aa_json_string(StringInfo buf, const char *s, int len)
{
	aa_put_char(buf, '"');
	aa_json_string_body(buf, s, len);
	aa_put_char(buf, '"');
}

/*
 * Whether a string is valid JSON, without throwing: settings' check hooks
 * must not throw, and the trigger wants its own error message.  On failure,
 * *detail (if not NULL) gets the parser's description of the problem.
 */
bool
aa_json_valid(char *json, char **detail)
{
	JsonLexContext *lex;
	JsonParseErrorType err;

#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, json, strlen(json),
									   GetDatabaseEncoding(), true);
#else
	lex = makeJsonLexContextCstringLen(json, strlen(json),
									   GetDatabaseEncoding(), true);
#endif
	err = pg_parse_json(lex, &nullSemAction);
	if (err == JSON_SUCCESS)
		return true;
	if (detail)
		*detail = json_errdetail(err, lex);
	return false;
}

/*
 * Append already-valid JSON text without insignificant whitespace and with
 * non-ASCII characters escaped, so that json values, jsonb output and
 * session-supplied objects never put a newline or raw byte into an event.
 * Returns false if the text ends inside a string (it was not valid JSON).
 */
bool
aa_json_compact(StringInfo buf, const char *json, int len)
{
	const unsigned char *p;
	const unsigned char *end;
	bool		in_string = false;

	json = to_utf8(json, &len);
	p = (const unsigned char *) json;
	end = p + len;
	while (p < end)
	{
		unsigned char c = *p;

		if (in_string)
		{
			if (c == '\\' && p + 1 < end)
			{
				aa_put(buf, (const char *) p, 2);
				p += 2;
				continue;
			}
			if (c == '"')
				in_string = false;
			if (c >= 0x80)
			{
				p += append_non_ascii(buf, p, end - p);
				continue;
			}
			if (c < 0x20 || c == 0x7f)
				append_u_escape(buf, c);
			else
				aa_put_char(buf, c);
		}
		else if (c == '"')
		{
			in_string = true;
			aa_put_char(buf, c);
		}
		else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			aa_put_char(buf, c);
		p++;
	}
	return !in_string;
}

/*
 * Classify a type the way jsonb_categorize_type() does and prepare what
 * serializing its values needs (output function, element or attribute
 * descriptions), allocated in mcxt so it lives as long as the cache entry.
 */
void
aa_value_out_init(AAValueOut *vo, Oid typid, MemoryContext mcxt)
{
	Oid			funcoid = InvalidOid;
	bool		isvarlena;

	check_stack_depth();
	memset(vo, 0, sizeof(AAValueOut));
	typid = getBaseType(typid);
	vo->typid = typid;

	switch (typid)
	{
		case BOOLOID:
			vo->category = AAJ_BOOL;
			break;
		case INT2OID:
			vo->category = AAJ_INT2;
			break;
		case INT4OID:
			vo->category = AAJ_INT4;
			break;
		case INT8OID:
			vo->category = AAJ_INT8;
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			/* their output function returns the stored string unchanged */
			vo->category = AAJ_TEXT;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			vo->category = AAJ_FLOAT;
			vo->has_float = true;
			getTypeOutputInfo(typid, &funcoid, &isvarlena);
			break;
		case NUMERICOID:
			vo->category = AAJ_NUMERIC;
			getTypeOutputInfo(typid, &funcoid, &isvarlena);
			break;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			vo->category = AAJ_DATETIME;
			break;
		case JSONOID:
			vo->category = AAJ_JSON;
			break;
		case JSONBOID:
			vo->category = AAJ_JSONB;
			break;
		default:
			vo->elemtype = get_element_type(typid);
			if (OidIsValid(vo->elemtype))
			{
				vo->category = AAJ_ARRAY;
				get_typlenbyvalalign(vo->elemtype, &vo->elmlen,
									 &vo->elmbyval, &vo->elmalign);
				vo->elem = MemoryContextAlloc(mcxt, sizeof(AAValueOut));
				aa_value_out_init(vo->elem, vo->elemtype, mcxt);
				vo->has_float = vo->elem->has_float;
			}
			else if (type_is_rowtype(typid))
			{
				TupleDesc	desc = lookup_rowtype_tupdesc(typid, -1);
				MemoryContext old = MemoryContextSwitchTo(mcxt);
				int			i;

				vo->category = AAJ_COMPOSITE;
				vo->typrelid = get_typ_typrelid(typid);
				vo->tupdesc = CreateTupleDescCopy(desc);
				ReleaseTupleDesc(desc);
				vo->atts = palloc0(sizeof(AAValueOut) * vo->tupdesc->natts);
				vo->attkeys = palloc0(sizeof(char *) * vo->tupdesc->natts);
				MemoryContextSwitchTo(old);
				for (i = 0; i < vo->tupdesc->natts; i++)
				{
					Form_pg_attribute att = TupleDescAttr(vo->tupdesc, i);
					StringInfoData key;

					if (att->attisdropped)
						continue;
					aa_value_out_init(&vo->atts[i], att->atttypid, mcxt);
					vo->has_float |= vo->atts[i].has_float;
					old = MemoryContextSwitchTo(mcxt);
					initStringInfo(&key);
					aa_json_string(&key, NameStr(att->attname),
								   strlen(NameStr(att->attname)));
					appendStringInfoChar(&key, ':');
					vo->attkeys[i] = key.data;
					MemoryContextSwitchTo(old);
				}
			}
			else
			{
				Oid			castfunc = InvalidOid;

				vo->category = AAJ_OTHER;
				/* like to_jsonb, honour a cast to json of non-built-in types */
				if (typid >= FirstNormalObjectId &&
					find_coercion_pathway(JSONOID, typid, COERCION_EXPLICIT,
										  &castfunc) == COERCION_PATH_FUNC &&
					OidIsValid(castfunc))
				{
					vo->category = AAJ_CAST;
					funcoid = castfunc;
				}
				else
					getTypeOutputInfo(typid, &funcoid, &isvarlena);
			}
			break;
	}
	if (OidIsValid(funcoid))
		fmgr_info_cxt(funcoid, &vo->func, mcxt);
}

/*
 * Add to relids the pg_class OIDs of the composite types a value of this
 * kind may contain.  ALTER TYPE on a composite invalidates only the type's
 * own relcache entry; the relation cache must know to listen for it.
 */
List *
aa_value_out_composites(AAValueOut *vo, List *relids)
{
	int			i;

	if (vo->category == AAJ_ARRAY)
		return aa_value_out_composites(vo->elem, relids);
	if (vo->category != AAJ_COMPOSITE)
		return relids;
	relids = list_append_unique_oid(relids, vo->typrelid);
	for (i = 0; i < vo->tupdesc->natts; i++)
	{
		if (!TupleDescAttr(vo->tupdesc, i)->attisdropped)
			relids = aa_value_out_composites(&vo->atts[i], relids);
	}
	return relids;
}

/* One dimension of an array, recursing into inner dimensions. */
static void
append_array_dim(StringInfo buf, AAValueOut *elem, int dim, int ndims,
				 int *dims, Datum *vals, bool *nulls, int *pos)
{
	int			i;

	aa_put_char(buf, '[');
	for (i = 0; i < dims[dim]; i++)
	{
		if (i > 0)
			aa_put_char(buf, ',');
		if (dim + 1 == ndims)
		{
			if (nulls[*pos])
				aa_put_lit(buf, "null");
			else
				aa_value_append(buf, elem, vals[*pos]);
			(*pos)++;
		}
		else
			append_array_dim(buf, elem, dim + 1, ndims, dims, vals, nulls, pos);
	}
	aa_put_char(buf, ']');
}

/* An array value, nested by dimension as array_to_jsonb() does. */
static void
append_array(StringInfo buf, AAValueOut *vo, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int			ndims = ARR_NDIM(arr);
	Datum	   *vals;
	bool	   *nulls;
	int			nitems;
	int			pos = 0;

	if (ndims <= 0 || ArrayGetNItems(ndims, ARR_DIMS(arr)) == 0)
	{
		aa_put_lit(buf, "[]");
		return;
	}
	deconstruct_array(arr, vo->elemtype, vo->elmlen, vo->elmbyval,
					  vo->elmalign, &vals, &nulls, &nitems);
	append_array_dim(buf, vo->elem, 0, ndims, ARR_DIMS(arr), vals, nulls, &pos);
	pfree(vals);
	pfree(nulls);
}

/* A composite value, as an object of its live attributes. */
static void
append_composite(StringInfo buf, AAValueOut *vo, Datum value)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(value);
	HeapTupleData tuple;
	TupleDesc	desc = vo->tupdesc;
	Datum	   *vals = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	bool		first = true;
	int			i;

	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	heap_deform_tuple(&tuple, desc, vals, nulls);

	aa_put_char(buf, '{');
	for (i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		if (!first)
			aa_put_char(buf, ',');
		first = false;
		aa_put_str(buf, vo->attkeys[i]);
		if (nulls[i])
			aa_put_lit(buf, "null");
		else
			aa_value_append(buf, &vo->atts[i], vals[i]);
	}
	aa_put_char(buf, '}');
	pfree(vals);
	pfree(nulls);
}

/*
 * Append a non-null value as JSON.  Allocations go to the current memory
 * context, which the caller resets after each row.
 */
void
aa_value_append(StringInfo buf, AAValueOut *vo, Datum value)
{
	char		num[MAXINT8LEN + 1];
	char	   *str;
	int			len;

	switch (vo->category)
	{
		case AAJ_INT2:
			len = int32_to_text(DatumGetInt16(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_INT4:
			len = int32_to_text(DatumGetInt32(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_INT8:
			len = int64_to_text(DatumGetInt64(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				aa_json_string(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_BOOL:
			if (DatumGetBool(value))
				aa_put_lit(buf, "true");
			else
				aa_put_lit(buf, "false");
			break;
		case AAJ_NUMERIC:
			str = OutputFunctionCall(&vo->func, value);
			len = strlen(str);
			/* NaN and the infinities are not JSON numbers: to_jsonb quotes them */
			if (IsValidJsonNumber(str, len))
				aa_put(buf, str, len);
			else
				aa_json_string(buf, str, len);
			break;
		case AAJ_FLOAT:
			str = OutputFunctionCall(&vo->func, value);
			aa_json_float(buf, str, strlen(str));
			break;
		case AAJ_DATETIME:
			/*
			 * timestamptz text depends on the session's TimeZone; where
			 * timestamps are passed by reference, equal Datums say nothing
			 */
			if (!vo->dt_cached || vo->dt_value != value || !FLOAT8PASSBYVAL ||
				vo->dt_zone != (const void *) session_timezone)
			{
				char		dt[MAXDATELEN + 1];

				JsonEncodeDateTime(dt, value, vo->typid, NULL);
				vo->dt_len = snprintf(vo->dt_text, sizeof(vo->dt_text),
									  "\"%s\"", dt);
				vo->dt_value = value;
				vo->dt_zone = (const void *) session_timezone;
				vo->dt_cached = true;
			}
			aa_put(buf, vo->dt_text, vo->dt_len);
			break;
		case AAJ_JSON:
			{
				text	   *t = DatumGetTextPP(value);

				aa_json_compact(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
				aa_json_compact(buf, str, strlen(str));
			}
			break;
		case AAJ_CAST:
			{
				text	   *t = DatumGetTextPP(FunctionCall1(&vo->func, value));

				aa_json_compact(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_ARRAY:
			append_array(buf, vo, value);
			break;
		case AAJ_COMPOSITE:
			append_composite(buf, vo, value);
			break;
		case AAJ_OTHER:
			str = OutputFunctionCall(&vo->func, value);
			aa_json_string(buf, str, strlen(str));
			break;
	}
}

/*
 * Append a value's plain text (what its output function gives), without
 * JSON quoting: the text of a one-column instance_id.  Integers and strings,
 * the usual key types, skip the output function call.
 */
void
aa_value_append_text(StringInfo buf, AAValueOut *vo, FmgrInfo *typoutput,
					 Datum value)
{
	switch (vo->category)
	{
		case AAJ_INT2:
		case AAJ_INT4:
		case AAJ_INT8:
			aa_value_append(buf, vo, value);
			break;
		case AAJ_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				aa_put(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		default:
			aa_put_str(buf, OutputFunctionCall(typoutput, value));
			break;
	}
}

/*
 * A time as RFC 3339 UTC with microseconds, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
 * (AA_UTC_TEXT_LEN characters and a NUL): the form of the event's
 * "timestamp" and of the stream's "committed_at", so consumers parse both
 * the same way.
 */
void
aa_format_utc(TimestampTz ts, char *out)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) ||
		timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for an audit event")));
	snprintf(out, AA_UTC_TEXT_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

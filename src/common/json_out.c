/*-------------------------------------------------------------------------
 *
 * json_out.c
 *		JSON text every stage may write: strings escaped to pure ASCII on
 *		one line, compaction and validation of JSON text (the audit.*
 *		settings), and the UTC time text of events and of the stream.
 *
 * Output is always pure ASCII on one line: non-ASCII characters are written
 * as \uXXXX escapes (as Python's json.dumps does by default), so an event
 * reads the same whatever the encoding of whoever consumes it.
 *
 * This file must not know about values, events or the stream.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "common/json_out.h"
#include "common/strbuf.h"

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
 * Parse len bytes of json with null semantic actions, which never throws:
 * true if it is valid JSON, else *detail (if not NULL) gets the parser's
 * description of the problem.  need_escapes decodes \u escapes too, so
 * that those jsonb cannot hold (\u0000, a lone surrogate) are refused.
 */
static bool
parse_json(char *json, int len, bool need_escapes, char **detail)
{
	JsonLexContext *lex;
	JsonParseErrorType err;

#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, json, len, GetDatabaseEncoding(),
									   need_escapes);
#else
	lex = makeJsonLexContextCstringLen(json, len, GetDatabaseEncoding(),
									   need_escapes);
#endif
	err = pg_parse_json(lex, &nullSemAction);
	if (err == JSON_SUCCESS)
		return true;
	if (detail)
		*detail = json_errdetail(err, lex);
	return false;
}

/*
 * Whether a string is valid JSON, escapes included, without throwing:
 * settings' check hooks must not throw, and the trigger wants its own
 * error message.
 */
bool
aa_json_valid(char *json, char **detail)
{
	return parse_json(json, strlen(json), true, detail);
}

/*
 * Whether text is syntactically valid JSON, checked without decoding its
 * escapes (so \u0000 or a lone surrogate, which json accepts, pass): the
 * readers use it to tell a damaged line from one whose escapes only jsonb
 * cannot hold.
 */
bool
aa_json_syntax_ok(char *json, int len, char **detail)
{
	return parse_json(json, len, false, detail);
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

/*
 * The reverse of aa_format_utc: parse exactly that form into *ts; false
 * for anything else, so a caller that accepts more (log_stream.c) can fall
 * back to timestamptz_in().  Without the datetime parser, because the
 * writer parses the time of each open transaction's first event.
 */
bool
aa_parse_utc(const char *s, int len, TimestampTz *ts)
{
	static const int digits[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15,
	17, 18, 20, 21, 22, 23, 24, 25};
	struct pg_tm tm;
	fsec_t		fsec = 0;
	int			i;

	if (len != AA_UTC_TEXT_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z')
		return false;
	for (i = 0; i < lengthof(digits); i++)
		if (s[digits[i]] < '0' || s[digits[i]] > '9')
			return false;
#define D(p) (s[p] - '0')
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = D(0) * 1000 + D(1) * 100 + D(2) * 10 + D(3);
	tm.tm_mon = D(5) * 10 + D(6);
	tm.tm_mday = D(8) * 10 + D(9);
	tm.tm_hour = D(11) * 10 + D(12);
	tm.tm_min = D(14) * 10 + D(15);
	tm.tm_sec = D(17) * 10 + D(18);
	for (i = 20; i < 26; i++)
		fsec = fsec * 10 + D(i);
#undef D
	return tm.tm_mon >= 1 && tm.tm_mon <= 12 && tm.tm_mday >= 1 &&
		tm.tm_mday <= day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] &&
		tm.tm_hour < 24 && tm.tm_min < 60 && tm.tm_sec < 60 &&
		tm2timestamp(&tm, fsec, NULL, ts) == 0;
}

/*-------------------------------------------------------------------------
 *
 * line_jsonb.c
 *		A stream line as the jsonb "event" of log_stream() and history(),
 *		whatever the line holds.
 *
 * The trigger writes what to_jsonb() would, but a json column is embedded
 * as its own text, and json accepts escapes that jsonb cannot hold: \u0000,
 * a surrogate without its partner, and -- in a database whose encoding is
 * not UTF8 -- any character that encoding lacks (the stream is shared by
 * every database of the cluster, and writes every non-ASCII character as
 * \uXXXX).  jsonb_in() throws on such a line, and so every log_stream()
 * window and every history() call that met it failed, for ever.
 *
 * The rule: such an escape is kept as its text.  In the returned jsonb the
 * string holds the six characters \u0000 (as if the line had \\u0000);
 * everything else of the event is as written.  The file is not changed
 * (verify() checks its real bytes).  A line that is not JSON at all --
 * damage, which verify() reports -- becomes an object naming the file, the
 * line number and the problem, with the line's printable text:
 * {"unreadable_line": "...", "file": "...", "line": N, "problem": "..."}.
 * So no line makes the readers unusable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "common/json_out.h"
#include "reader/reader.h"

/* The conversion from UTF8 to the database encoding, looked up once. */
static Oid	to_db_proc = InvalidOid;
static bool to_db_known = false;

/* The value of four hex digits at p, or -1. */
static int
hex4(const char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Whether the database encoding can hold a code point: always in UTF8;
 * else only if the conversion from UTF8 takes it (SQL_ASCII has none).
 */
static bool
db_can_hold(pg_wchar cp)
{
	unsigned char utf8[8];
	unsigned char out[MAX_CONVERSION_GROWTH * 4 + 1];
	int			len;

	if (cp <= 0x7F || GetDatabaseEncoding() == PG_UTF8)
		return true;
	if (!to_db_known)
	{
		to_db_proc = FindDefaultConversionProc(PG_UTF8, GetDatabaseEncoding());
		to_db_known = true;
	}
	if (!OidIsValid(to_db_proc))
		return false;
	unicode_to_utf8(cp, utf8);
	len = pg_utf_mblen(utf8);
	return pg_do_encoding_conversion_buf(to_db_proc, PG_UTF8, GetDatabaseEncoding(),
										 utf8, len, out, sizeof(out), true) == len;
}

/*
 * The line with every \u escape that jsonb cannot hold turned into its
 * text (an extra backslash), or the line itself when there is none.  A
 * backslash only ever appears inside JSON strings, so the scan needs no
 * parser: "\\" is skipped as a pair, "\uXXXX" examined.
 */
static char *
jsonb_safe_text(char *line, size_t len)
{
	StringInfoData out;
	bool		copied = false;
	size_t		done = 0;
	size_t		i;

	for (i = 0; i + 1 < len; i++)
	{
		int			c1;
		size_t		elen = 6;
		bool		bad = false;

		if (line[i] != '\\')
			continue;
		if (line[i + 1] != 'u' || i + 6 > len || (c1 = hex4(line + i + 2)) < 0)
		{
			i++;				/* another escape, or one the lexer reports */
			continue;
		}
		if (c1 == 0 || (c1 >= 0xDC00 && c1 <= 0xDFFF))
			bad = true;
		else if (c1 >= 0xD800 && c1 <= 0xDBFF)
		{
			int			c2 = (i + 12 <= len && line[i + 6] == '\\' && line[i + 7] == 'u') ?
				hex4(line + i + 8) : -1;

			if (c2 >= 0xDC00 && c2 <= 0xDFFF)
			{
				elen = 12;
				bad = !db_can_hold(0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00));
			}
			else
				bad = true;		/* a high surrogate alone: only it is kept as text */
		}
		else
			bad = !db_can_hold((pg_wchar) c1);

		if (bad)
		{
			if (!copied)
			{
				initStringInfo(&out);
				copied = true;
			}
			appendBinaryStringInfo(&out, line + done, i - done);
			appendStringInfoChar(&out, '\\');
			done = i;
			if (elen == 12)
			{
				/* both halves of a pair, or the low one would stand alone */
				appendBinaryStringInfo(&out, line + i, 6);
				appendStringInfoChar(&out, '\\');
				done = i + 6;
			}
		}
		i += elen - 1;
	}
	if (!copied)
		return line;
	appendBinaryStringInfo(&out, line + done, len - done);
	return out.data;
}

/* The line's printable ASCII, other bytes as '?', for an unreadable line. */
static char *
printable(const char *line, size_t len)
{
	char	   *s = palloc(len + 1);
	size_t		i;

	for (i = 0; i < len; i++)
		s[i] = (line[i] >= 0x20 && line[i] < 0x7F) ? line[i] : '?';
	s[len] = '\0';
	return s;
}

/*
 * The jsonb of one complete line (NUL-terminated at len) of the file
 * 'file', line 'lineno'.  *readable is false when the line is not a JSON
 * object: the result then describes it instead (see the file's comment).
 */
Jsonb *
aa_line_to_jsonb(char *line, size_t len, const char *file, int64 lineno,
				 bool *readable)
{
	char	   *text = line;
	char	   *detail = NULL;
	StringInfoData buf;

	if (memchr(line, '\0', len) == NULL && aa_json_syntax_ok(line, (int) len, &detail))
	{
		const char *p = line;

		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '{')
		{
			Jsonb	   *jb;

			text = jsonb_safe_text(line, len);
			jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
			*readable = true;
			return jb;
		}
		detail = pstrdup("the line is JSON but not an object");
	}

	*readable = false;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"unreadable_line\":");
	text = printable(line, len);
	aa_json_string(&buf, text, strlen(text));
	appendStringInfoString(&buf, ",\"file\":");
	aa_json_string(&buf, file, strlen(file));
	appendStringInfo(&buf, ",\"line\":" INT64_FORMAT ",\"problem\":", lineno);
	text = detail ? printable(detail, strlen(detail)) : pstrdup("the line holds NUL bytes");
	aa_json_string(&buf, text, strlen(text));
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

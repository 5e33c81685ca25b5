/*-------------------------------------------------------------------------
 *
 * stream_line.c
 *		Parsing and checking the lines of the delivered stream: the one
 *		definition of a line (see stream_format.h) that the writer's
 *		recovery, the SQL readers, verify() and the offline tool share.
 *
 * A line is parsed from its end: the fixed-size chain suffix, then
 * committed_at, lsn and seq right before it, exactly as the writer formats
 * them; nothing of the event itself is parsed.  So aa_line_parse() may be
 * given only the last bytes of a long line (recovery reads no more than
 * that), and a key named "seq" or "prev_hash" inside the event changes
 * nothing.
 *
 * The gap line (stream_format.h) is written and read here too
 * (aa_gap_format, aa_gap_parse), so the writer and every reader share one
 * definition of it.
 *
 * The chain check (aa_chain_*) holds the rules of SPEC section 6 and the
 * wording of every verdict, so that verify() and activity_audit_verify can
 * only ever agree.
 *
 * No PostgreSQL headers: tools/activity_audit_verify links this file too.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/sha256.h"
#include "common/stream_line.h"

#define LIT_LEN(lit)	(sizeof(lit) - 1)

/*
 * A stored hash: exactly 64 lowercase hex digits.  Every line is checked
 * for two, so without a branch per character (the compiler vectorizes
 * it): a loop that stopped at the first bad digit took a fifth of the
 * offline tool's time.
 */
bool
aa_is_hash_hex(const char *s)
{
	unsigned int ok = 1;
	int			i;

	for (i = 0; i < AA_HASH_HEX_LEN; i++)
	{
		unsigned char c = (unsigned char) s[i];

		ok &= ((unsigned char) (c - '0') < 10) | ((unsigned char) (c - 'a') < 6);
	}
	return ok != 0;
}

/* The value of one hex digit (either case), or -1. */
int
aa_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse "X/X" as pg_lsn prints it (1 to 8 hex digits each); end is set past it. */
bool
aa_parse_lsn(const char *s, uint64_t *lsn, const char **end)
{
	uint64_t	half[2] = {0, 0};
	int			h;

	for (h = 0; h < 2; h++)
	{
		int			n;

		for (n = 0; n < 8 && aa_hex_value(*s) >= 0; n++, s++)
			half[h] = half[h] * 16 + aa_hex_value(*s);
		if (n == 0 || (h == 0 && *s++ != '/'))
			return false;
	}
	*lsn = (half[0] << 32) | half[1];
	*end = s;
	return true;
}

/* Parse a decimal uint64 without sign or overflow; end is set past it. */
bool
aa_parse_uint64(const char *s, uint64_t *value, const char **end)
{
	uint64_t	v = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9')
	{
		if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t) (*p - '0');
		p++;
	}
	if (p == s)
		return false;
	*value = v;
	*end = p;
	return true;
}

/*
 * The decimal uint64 that ends right before 'end', not reaching before
 * 'start' (at most 20 digits, no overflow): where it starts, or NULL.  The
 * writer's keys and the signatures are read from a text's end this way.
 */
const char *
aa_uint64_before(const char *start, const char *end, uint64_t *value)
{
	const char *p = end;
	const char *after;

	while (p > start && p[-1] >= '0' && p[-1] <= '9' && end - p < 20)
		p--;
	if (p == end || !aa_parse_uint64(p, value, &after) || after != end)
		return NULL;
	return p;
}

/*
 * Whether the event part of a line, text[0 .. body_len), ends the way only
 * a gap line's does: with "lost_to_lsn" equal to the line's "lsn" (see
 * stream_format.h; an event's last key is "txid").  This needs no more
 * than the line's end, which is all the writer's recovery reads.
 */
static bool
ends_like_gap(const char *text, size_t body_len, uint64_t lsn)
{
	const char *end = text + body_len;
	const char *q;
	const char *after;
	uint64_t	value;

	if (body_len < LIT_LEN(AA_GAP_LOST_TO_KEY) + 4 || end[-1] != '"')
		return false;
	q = end - 1;
	while (q > text && (aa_hex_value(q[-1]) >= 0 || q[-1] == '/') &&
		   (end - 1) - q <= 17)
		q--;
	if (q - text < (ptrdiff_t) LIT_LEN(AA_GAP_LOST_TO_KEY) ||
		memcmp(q - LIT_LEN(AA_GAP_LOST_TO_KEY), AA_GAP_LOST_TO_KEY,
			   LIT_LEN(AA_GAP_LOST_TO_KEY)) != 0)
		return false;
	return aa_parse_lsn(q, &value, &after) && after == end - 1 && value == lsn;
}

/*
 * Parse the keys the writer adds at the end of a line (text, len: the line
 * without its newline, or only its last bytes).  false when the end is not
 * exactly the form of stream_format.h.
 */
bool
aa_line_parse(const char *text, size_t len, AALine *line)
{
	const char *end = text + len;
	const char *s;
	const char *p;
	const char *ca;
	const char *digits;
	uint64_t	seq;
	uint64_t	lsn;

	if (len < (size_t) AA_CHAIN_SUFFIX_LEN + LIT_LEN(AA_COMMITTED_AT_KEY) +
		AA_UTC_LEN + LIT_LEN(AA_LSN_KEY) + LIT_LEN(AA_SEQ_KEY) + 6)
		return false;

	/* ,"prev_hash":"<64>","hash":"<64>"} */
	s = end - AA_CHAIN_SUFFIX_LEN;
	if (memcmp(s, AA_PREV_HASH_KEY, LIT_LEN(AA_PREV_HASH_KEY)) != 0)
		return false;
	p = s + LIT_LEN(AA_PREV_HASH_KEY);
	if (!aa_is_hash_hex(p) ||
		memcmp(p + AA_HASH_HEX_LEN, AA_HASH_KEY, LIT_LEN(AA_HASH_KEY)) != 0)
		return false;
	line->prev_hash = p;
	p += AA_HASH_HEX_LEN + LIT_LEN(AA_HASH_KEY);
	if (!aa_is_hash_hex(p) || p[AA_HASH_HEX_LEN] != '"' ||
		p[AA_HASH_HEX_LEN + 1] != '}')
		return false;
	line->hash = p;

	/* ","committed_at":"<27>" right before it */
	if (s[-1] != '"')
		return false;
	ca = s - 1 - AA_UTC_LEN;
	p = ca - LIT_LEN(AA_COMMITTED_AT_KEY);
	if (memcmp(p, AA_COMMITTED_AT_KEY, LIT_LEN(AA_COMMITTED_AT_KEY)) != 0)
		return false;
	line->committed_at = ca;

	/* ,"lsn":"X/X right before that: walk back over the LSN's characters */
	{
		const char *lsn_end = p;
		const char *q = lsn_end;
		const char *after;

		while (q > text && (aa_hex_value(q[-1]) >= 0 || q[-1] == '/') &&
			   lsn_end - q <= 17)
			q--;
		if (q - text < (ptrdiff_t) LIT_LEN(AA_LSN_KEY) ||
			memcmp(q - LIT_LEN(AA_LSN_KEY), AA_LSN_KEY, LIT_LEN(AA_LSN_KEY)) != 0 ||
			!aa_parse_lsn(q, &lsn, &after) || after != lsn_end)
			return false;
		p = q - LIT_LEN(AA_LSN_KEY);
	}

	/* "seq":<digits> right before that, after ',' or the object's '{' */
	digits = aa_uint64_before(text, p, &seq);
	if (digits == NULL || digits - text < (ptrdiff_t) LIT_LEN(AA_SEQ_KEY) + 1 ||
		memcmp(digits - LIT_LEN(AA_SEQ_KEY), AA_SEQ_KEY, LIT_LEN(AA_SEQ_KEY)) != 0)
		return false;
	{
		char		before = digits[-(ptrdiff_t) LIT_LEN(AA_SEQ_KEY) - 1];

		if (before != ',' && before != '{')
			return false;
		line->body_len = (digits - LIT_LEN(AA_SEQ_KEY) - text) -
			(before == ',' ? 1 : 0);
	}
	line->seq = seq;
	line->lsn = lsn;
	line->hashed_len = len - AA_CHAIN_SUFFIX_LEN;
	line->gap = ends_like_gap(text, line->body_len, lsn);
	return true;
}

/*
 * Whether a directory entry's name is a stream file: <something>.jsonl.  A
 * name that is only the suffix is a hidden file, never made by the writer.
 * (Whether it is a regular file is for the caller to check.)
 */
bool
aa_is_stream_file_name(const char *name)
{
	size_t		len = strlen(name);
	size_t		slen = LIT_LEN(AA_STREAM_FILE_SUFFIX);

	return len > slen && strcmp(name + len - slen, AA_STREAM_FILE_SUFFIX) == 0;
}

/* An LSN as pg_lsn prints it: "X/X", upper-case hex. */
static void
format_lsn(uint64_t lsn, char *out, size_t size)
{
	snprintf(out, size, "%" PRIX32 "/%" PRIX32,
			 (uint32_t) (lsn >> 32), (uint32_t) lsn);
}

/* A gap line's reason: 1 to AA_GAP_REASON_MAX of [a-z_]. */
static bool
is_gap_reason(const char *s)
{
	size_t		i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return false;
	return i > 0 && i <= AA_GAP_REASON_MAX;
}

/*
 * The event part of a gap line, "{...}", in the one form of
 * stream_format.h; the writer appends its keys like to any event.  Returns
 * its length, or -1 when it does not fit or gap holds what the form does
 * not allow (a malformed reason or time).
 */
int
aa_gap_format(const AAGap *gap, char *out, size_t size)
{
	char		from[20];
	char		to[20];
	int			n;

	if (strlen(gap->detected) != AA_UTC_LEN || !is_gap_reason(gap->reason) ||
		gap->lost_from > gap->lost_to)
		return -1;
	format_lsn(gap->lost_from, from, sizeof(from));
	format_lsn(gap->lost_to, to, sizeof(to));
	n = snprintf(out, size,
				 AA_TIMESTAMP_PREFIX "%s\",\"level\":\"AUDIT\",\"name\":\"" AA_GAP_NAME "\","
				 "\"message\":\"" AA_GAP_EVENT_TYPE ": the WAL from %s to %s was gone "
				 "before the writer read it; the events in it are missing\","
				 "\"event_type\":\"" AA_GAP_EVENT_TYPE "\",\"reason\":\"%s\","
				 "\"system_identifier\":\"%" PRIu64 "\",\"timeline\":%" PRIu32 ","
				 "\"txid_upper_bound\":%" PRIu64 ",\"lost_from_lsn\":\"%s\""
				 AA_GAP_LOST_TO_KEY "%s\"}",
				 gap->detected, from, to, gap->reason, gap->system_identifier,
				 gap->timeline, gap->txid_upper_bound, from, to);
	if (n < 0 || (size_t) n >= size)
		return -1;
	return n;
}

/* A cursor over a gap line; ok turns false at the first mismatch. */
typedef struct GapCursor
{
	const char *p;
	const char *end;
	bool		ok;
} GapCursor;

static void
gap_lit(GapCursor *c, const char *lit)
{
	size_t		n = strlen(lit);

	if (c->ok && (size_t) (c->end - c->p) >= n && memcmp(c->p, lit, n) == 0)
		c->p += n;
	else
		c->ok = false;
}

/* Up to the next '"' (not taken), at most max bytes, none a backslash. */
static size_t
gap_text(GapCursor *c, size_t max)
{
	const char *start = c->p;

	while (c->ok && c->p < c->end && *c->p != '"' && *c->p != '\\' &&
		   (size_t) (c->p - start) < max)
		c->p++;
	if (c->p >= c->end || *c->p != '"')
		c->ok = false;
	return c->p - start;
}

static void
gap_u64(GapCursor *c, uint64_t *value)
{
	const char *after;

	if (c->ok && aa_parse_uint64(c->p, value, &after) && after <= c->end)
		c->p = after;
	else
		c->ok = false;
}

static void
gap_lsn(GapCursor *c, uint64_t *lsn)
{
	const char *after;

	if (c->ok && aa_parse_lsn(c->p, lsn, &after) && after <= c->end)
		c->p = after;
	else
		c->ok = false;
}

/*
 * Whether a complete line (text, len, without its newline; line: as
 * aa_line_parse() read it) is a gap line of exactly the form of
 * stream_format.h, with its "lsn" and "committed_at" as that form says;
 * fills gap when it is.
 */
bool
aa_gap_parse(const char *text, size_t len, const AALine *line, AAGap *gap)
{
	GapCursor	c = {text, text + line->body_len, true};
	uint64_t	timeline;
	const char *start;
	size_t		n;

	if (!line->gap || line->body_len > len)
		return false;
	memset(gap, 0, sizeof(*gap));
	gap_lit(&c, AA_TIMESTAMP_PREFIX);
	start = c.p;
	if (gap_text(&c, AA_UTC_LEN) != AA_UTC_LEN)
		return false;
	memcpy(gap->detected, start, AA_UTC_LEN);
	gap_lit(&c, "\",\"level\":\"AUDIT\",\"name\":\"" AA_GAP_NAME "\",\"message\":\"");
	(void) gap_text(&c, AA_GAP_LINE_MAX);
	gap_lit(&c, "\",\"event_type\":\"" AA_GAP_EVENT_TYPE "\",\"reason\":\"");
	start = c.p;
	n = gap_text(&c, AA_GAP_REASON_MAX);
	if (!c.ok || n == 0)
		return false;
	memcpy(gap->reason, start, n);
	gap_lit(&c, "\",\"system_identifier\":\"");
	gap_u64(&c, &gap->system_identifier);
	gap_lit(&c, "\",\"timeline\":");
	gap_u64(&c, &timeline);
	gap_lit(&c, ",\"txid_upper_bound\":");
	gap_u64(&c, &gap->txid_upper_bound);
	gap_lit(&c, ",\"lost_from_lsn\":\"");
	gap_lsn(&c, &gap->lost_from);
	gap_lit(&c, "\"" AA_GAP_LOST_TO_KEY);
	gap_lsn(&c, &gap->lost_to);
	gap_lit(&c, "\"");
	if (!c.ok || c.p != c.end || timeline > UINT32_MAX ||
		!is_gap_reason(gap->reason))
		return false;
	gap->timeline = (uint32_t) timeline;
	return gap->lost_to == line->lsn && gap->lost_from <= gap->lost_to &&
		memcmp(gap->detected, line->committed_at, AA_UTC_LEN) == 0;
}

/*
 * What a gap line says, in the words the verifiers use:
 * "WAL X/X to X/X lost on system N timeline N: reason".
 */
void
aa_gap_text(const AAGap *gap, char *out, size_t size)
{
	char		from[20];
	char		to[20];

	format_lsn(gap->lost_from, from, sizeof(from));
	format_lsn(gap->lost_to, to, sizeof(to));
	snprintf(out, size, "WAL %s to %s lost on system %" PRIu64 " timeline %" PRIu32 ": %s",
			 from, to, gap->system_identifier, gap->timeline, gap->reason);
}

/* Start checking a stream from its beginning. */
void
aa_chain_init(AAChainCheck *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->prev_hash, AA_ZERO_HASH, AA_HASH_HEX_LEN + 1);
}

/* Record the first problem; later ones are not reported. */
static void chain_fail(AAChainCheck *c, const char *file, int64_t lineno,
					   const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

static void
chain_fail(AAChainCheck *c, const char *file, int64_t lineno,
		   const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (c->broken)
		return;
	n = snprintf(c->detail, sizeof(c->detail), "%s:%" PRId64 ": ", file, lineno);
	if (n < 0 || (size_t) n >= sizeof(c->detail))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(c->detail + n, sizeof(c->detail) - n, fmt, ap);
	va_end(ap);
	c->broken = true;
	c->first_bad_seq = c->last_seq + 1;
}

/*
 * Check the next complete line of the stream (without its newline): line
 * lineno (from 1) of file.  true when it is the next link of the chain.
 * After the first problem every line is rejected without a new verdict.
 */
bool
aa_chain_line(AAChainCheck *c, const char *file, int64_t lineno,
			  const char *text, size_t len)
{
	AALine		line;
	char		computed[AA_HASH_HEX_LEN + 1];
	uint64_t	want = c->last_seq + 1;

	c->line_is_gap = false;
	if (c->broken)
		return false;
	if (len == 0)
	{
		chain_fail(c, file, lineno, "empty line");
		return false;
	}
	if (!aa_line_parse(text, len, &line))
	{
		chain_fail(c, file, lineno,
				   "not a stream line: it does not end with the \"seq\", \"lsn\", "
				   "\"committed_at\", \"prev_hash\" and \"hash\" keys");
		return false;
	}

	/* the line's own hash: catches any edit of its text */
	aa_sha256_hex_prefixed(line.prev_hash, AA_HASH_HEX_LEN, text,
						   line.hashed_len, computed);
	if (memcmp(computed, line.hash, AA_HASH_HEX_LEN) != 0)
	{
		chain_fail(c, file, lineno,
				   "seq %" PRIu64 ": hash mismatch: the line says %.64s, its text "
				   "hashes to %.64s (line edited)", line.seq, line.hash, computed);
		return false;
	}

	/* a stream whose oldest files are gone, anchored by the caller */
	if (c->last_seq == 0 && line.seq > 1 && c->start_ok &&
		c->start_ok(c->start_arg, line.seq, line.prev_hash))
	{
		c->last_seq = line.seq - 1;
		want = line.seq;
		memcpy(c->prev_hash, line.prev_hash, AA_HASH_HEX_LEN);
	}
	if (c->first_seq == 0)
		c->first_seq = line.seq;

	/* its place in the stream */
	if (line.seq != want)
	{
		if (c->last_seq == 0)
			chain_fail(c, file, lineno,
					   "seq %" PRIu64 ": the stream does not start at seq 1: "
					   "events 1..%" PRIu64 " missing (the first file missing, "
					   "or lines deleted)", line.seq, line.seq - 1);
		else if (line.seq > want)
		{
			char		missing[64];

			if (line.seq == want + 1)
				snprintf(missing, sizeof(missing), "event %" PRIu64, want);
			else
				snprintf(missing, sizeof(missing), "events %" PRIu64 "..%" PRIu64,
						 want, line.seq - 1);
			chain_fail(c, file, lineno,
					   "seq %" PRIu64 ": seq gap: expected seq %" PRIu64 " after seq %"
					   PRIu64 ", %s missing (%s)",
					   line.seq, want, c->last_seq, missing,
					   lineno == 1 ? "a file missing, or lines deleted or reordered" :
					   "lines deleted or reordered");
		}
		else
			chain_fail(c, file, lineno,
					   "seq %" PRIu64 ": seq repeated or out of order: expected seq %"
					   PRIu64 " after seq %" PRIu64 " (line inserted or lines reordered)",
					   line.seq, want, c->last_seq);
		return false;
	}
	if (memcmp(line.prev_hash, c->prev_hash, AA_HASH_HEX_LEN) != 0)
	{
		if (want == 1)
			chain_fail(c, file, lineno,
					   "seq 1: prev_hash is %.64s, expected 64 zeros for the first "
					   "event of the stream", line.prev_hash);
		else
			chain_fail(c, file, lineno,
					   "seq %" PRIu64 ": prev_hash is %.64s, but the hash of seq %"
					   PRIu64 " is %.64s (chain broken)",
					   line.seq, line.prev_hash, c->last_seq, c->prev_hash);
		return false;
	}

	/* a gap line is a link like any other, but must say what was lost */
	if (line.gap)
	{
		if (!aa_gap_parse(text, len, &line, &c->line_gap))
		{
			chain_fail(c, file, lineno,
					   "seq %" PRIu64 ": a gap line (it ends with \"lost_to_lsn\") "
					   "that does not have the gap line's form", line.seq);
			return false;
		}
		c->line_is_gap = true;
		if (c->gaps++ == 0)
		{
			c->first_gap_seq = line.seq;
			c->first_gap = c->line_gap;
		}
	}

	memcpy(c->prev_hash, line.hash, AA_HASH_HEX_LEN);
	c->last_seq = line.seq;
	c->verified++;
	return true;
}

/*
 * A file other than the last ends with bytes after its last newline: a
 * line that was cut, since the writer only leaves a file after completing
 * its lines (in the last file it may be a line still being written).
 */
void
aa_chain_incomplete_file(AAChainCheck *c, const char *file, int64_t lineno,
						 size_t bytes)
{
	chain_fail(c, file, lineno,
			   "incomplete line (no trailing newline, %zu bytes) at the end of "
			   "a file that is not the last", bytes);
}

/*
 * What an intact chain's gap lines say, for the verdict of verify() and
 * activity_audit_verify ("" when there are none): the chain proves the
 * stream as written, and these lines are where the writer wrote that
 * events were lost.
 */
void
aa_chain_gap_note(const AAChainCheck *c, char *out, size_t size)
{
	char		what[AA_GAP_TEXT_MAX];

	if (c->gaps == 0)
	{
		if (size > 0)
			out[0] = '\0';
		return;
	}
	aa_gap_text(&c->first_gap, what, sizeof(what));
	if (c->gaps == 1)
		snprintf(out, size, "events were lost: 1 gap, at seq %" PRIu64 " (%s)",
				 c->first_gap_seq, what);
	else
		snprintf(out, size, "events were lost: %" PRIu64 " gaps, the first at seq %"
				 PRIu64 " (%s)", c->gaps, c->first_gap_seq, what);
}

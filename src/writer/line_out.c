/*-------------------------------------------------------------------------
 *
 * line_out.c
 *		The keys the writer adds to a delivered event: "seq", "lsn",
 *		"committed_at" and the chain's "prev_hash" and "hash", in the form
 *		common/stream_format.h defines (common/stream_line.c parses it).
 *
 * This is on the writer's per-event path, so it formats by hand: printf-
 * style formatting was the largest cost per event.  A pure function of its
 * arguments: a standby replaying the same WAL writes the same lines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/json_out.h"
#include "common/sha256.h"
#include "utils/builtins.h"
#include "writer/writer.h"

/* the digest of the line being written or checked */
static AASha256 sha_ctx;

/*
 * Start a line's digest with its prev_hash.  The SHA-256 code was chosen
 * and self-tested when the library was loaded (_PG_init).
 */
static void
hash_begin(const char *prev_hash)
{
	aa_sha256_init(&sha_ctx);
	aa_sha256_update(&sha_ctx, prev_hash, AA_HASH_HEX_LEN);
}

static void
hash_add(const char *data, size_t len)
{
	aa_sha256_update(&sha_ctx, data, len);
}

/* Finish into lowercase hex, the form the chain stores. */
static void
hash_end(char *hex)
{
	aa_sha256_final_hex(&sha_ctx, hex);
}

/*
 * The keys the stream adds before the chain: [,]"seq":N,"lsn":"X/X",
 * "committed_at":"...".  Formatted by hand: printf-style formatting was the
 * largest cost per event.  All events of a commit share committed_at, so
 * its text is kept from the previous event.
 */
static int
format_trailer(char *out, bool comma, uint64 seq, XLogRecPtr lsn,
			   TimestampTz committed_at)
{
	static TimestampTz last_ts = DT_NOBEGIN;
	static char last_text[AA_UTC_TEXT_LEN + 1];
	static const char hexdig[] = "0123456789ABCDEF";
	char	   *t = out;
	int			half;

	if (committed_at != last_ts)
	{
		aa_format_utc(committed_at, last_text);
		last_ts = committed_at;
	}
	if (comma)
		*t++ = ',';
	memcpy(t, "\"seq\":", 6);
	t += 6;
	t += pg_ulltoa_n(seq, t);
	memcpy(t, ",\"lsn\":\"", 8);
	t += 8;
	for (half = 0; half < 2; half++)
	{
		uint32		v = half == 0 ? (uint32) (lsn >> 32) : (uint32) lsn;
		char		digits[8];
		int			n = 0;

		do
		{
			digits[n++] = hexdig[v & 0xF];
			v >>= 4;
		} while (v != 0);
		while (n > 0)
			*t++ = digits[--n];
		if (half == 0)
			*t++ = '/';
	}
	memcpy(t, "\",\"committed_at\":\"", 18);
	t += 18;
	memcpy(t, last_text, AA_UTC_TEXT_LEN);
	t += AA_UTC_TEXT_LEN;
	*t++ = '"';
	return t - out;
}

/*
 * The tail of a delivered line: everything after the event's text without
 * its closing brace (body_len bytes of event), up to and including the
 * newline, into out (AA_LINE_TAIL_MAX bytes); returns its length, and the
 * line's hash (64 hex and a NUL) in hash.  "{}" gets no comma.
 */
int
aa_line_tail(const char *event, int body_len, uint64 seq, XLogRecPtr lsn,
			 TimestampTz committed_at, const char *prev_hash, char *out,
			 char *hash)
{
	int			i;
	int			tlen;
	char	   *t;

	for (i = body_len - 1; i > 0 && isspace((unsigned char) event[i]); i--)
		;
	tlen = format_trailer(out, event[i] != '{', seq, lsn, committed_at);
	Assert(tlen > 0 && tlen < AA_LINE_TAIL_MAX - AA_CHAIN_SUFFIX_LEN - 1);

	hash_begin(prev_hash);
	hash_add(event, body_len);
	hash_add(out, tlen);
	hash_end(hash);

	t = out + tlen;
	memcpy(t, AA_PREV_HASH_KEY, sizeof(AA_PREV_HASH_KEY) - 1);
	t += sizeof(AA_PREV_HASH_KEY) - 1;
	memcpy(t, prev_hash, AA_HASH_HEX_LEN);
	t += AA_HASH_HEX_LEN;
	memcpy(t, AA_HASH_KEY, sizeof(AA_HASH_KEY) - 1);
	t += sizeof(AA_HASH_KEY) - 1;
	memcpy(t, hash, AA_HASH_HEX_LEN);
	t += AA_HASH_HEX_LEN;
	memcpy(t, "\"}\n", 3);
	t += 3;
	Assert(t - (out + tlen) == AA_CHAIN_SUFFIX_LEN + 1);
	return t - out;
}

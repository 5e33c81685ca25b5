/*-------------------------------------------------------------------------
 *
 * sign.c
 *		The event key and the MAC that proves an event was written by the
 *		audit trigger and not by anybody calling pg_logical_emit_message().
 *
 * The keys come from event_key.c: the first signs, every one verifies (so
 * that a key can be rotated while events signed under the old one wait).
 *
 * Every message the trigger writes ends with its signature (sign.h gives
 * the layout): the top-level transaction's full 64-bit id, the message's
 * number within that transaction (1, 2, ... in WAL order, also across
 * subtransactions, rolled back ones included), and a SipHash-2-4 MAC of
 * the two under the key.  The writer accepts a (txid, number) only once
 * and only rising, so a signature copied out of the WAL -- by a
 * REPLICATION role that streams it, say, into a message of the same open
 * transaction -- signs nothing: its number has been used already.  A
 * signature copied into another transaction names the wrong txid, which
 * the writer checks against the commit record.  The text itself is
 * protected like all WAL, by the record's CRC and by only the server
 * writing WAL; a MAC over the whole text would cost the trigger about a
 * quarter of its own work, one over sixteen bytes nothing measurable.
 *
 * Release 0.1 signed the txid alone (version 1: a "sig" of just the hex
 * digits).  Its messages are still verified, for the writer to deliver
 * those written before the upgrade (decode.c decides which).
 *
 * This file must not know what an event contains.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "activity_audit.h"
#include "common/digest.h"
#include "common/sign.h"
#include "common/siphash.h"
#include "common/stream_format.h"
#include "common/stream_line.h"
#include "common/strbuf.h"

/* 0.1's signature: ,"sig":"0123456789abcdef"} (see sign.h) */
#define AA_SIG_PREFIX	AA_SIG_KEY
#define AA_SIG_LEN		(sizeof(AA_SIG_PREFIX) - 1 + AA_SIG_HEX_LEN + 2)

/* the keys: [0] signs, all verify */
static uint64 keys[AA_MAX_KEYS][2];
static int	nkeys = 0;

/*
 * Add a key (event_key.c, at postmaster start).  The first added signs.
 * False if it is there already or there is no room.
 */
bool
aa_add_event_key(const unsigned char *key)
{
	uint64		k0 = aa_load_le64(key);
	uint64		k1 = aa_load_le64(key + 8);
	int			i;

	for (i = 0; i < nkeys; i++)
		if (keys[i][0] == k0 && keys[i][1] == k1)
			return false;
	if (nkeys == AA_MAX_KEYS)
		return false;
	keys[nkeys][0] = k0;
	keys[nkeys][1] = k1;
	nkeys++;
	return true;
}


/* The 16 lowercase hex digits of a MAC. */
static void
mac_hex(uint64 mac, char *out)
{
	static const char hex[] = "0123456789abcdef";
	int			i;

	for (i = 0; i < AA_SIG_HEX_LEN; i++)
		out[i] = hex[(mac >> (60 - 4 * i)) & 0xF];
}

/* Version 1 (0.1): the MAC of the transaction id alone, under key k. */
static uint64
mac_v1(int k, uint64 txid)
{
	unsigned char bytes[8];
	int			i;

	for (i = 0; i < 8; i++)
		bytes[i] = (unsigned char) (txid >> (8 * i));
	return aa_siphash24(keys[k][0], keys[k][1], bytes, sizeof(bytes));
}

/* Version 2: the MAC of the transaction id and the message's number. */
static uint64
mac_v2(int k, uint64 txid, uint64 counter)
{
	unsigned char bytes[16];
	int			i;

	for (i = 0; i < 8; i++)
	{
		bytes[i] = (unsigned char) (txid >> (8 * i));
		bytes[8 + i] = (unsigned char) (counter >> (8 * i));
	}
	return aa_siphash24(keys[k][0], keys[k][1], bytes, sizeof(bytes));
}

/* Append the decimal digits of an unsigned 64-bit number. */
static void
put_u64(StringInfo buf, uint64 v)
{
	enlargeStringInfo(buf, MAXINT8LEN);
	buf->len += pg_ulltoa_n(v, buf->data + buf->len);
	buf->data[buf->len] = '\0';
}

/* "<txid>:<counter>:<mac>" with its quotes. */
static void
put_signature(StringInfo buf, uint64 txid, uint64 counter)
{
	char		hex[AA_SIG_HEX_LEN];

	if (nkeys == 0)
		aa_require_preload();
	aa_put_char(buf, '"');
	put_u64(buf, txid);
	aa_put_char(buf, ':');
	put_u64(buf, counter);
	aa_put_char(buf, ':');
	mac_hex(mac_v2(0, txid, counter), hex);
	aa_put(buf, hex, AA_SIG_HEX_LEN);
	aa_put_char(buf, '"');
}

/*
 * Sign a message that is a JSON object (an event or a header): its closing
 * brace becomes ,"sig":"<txid>:<counter>:<mac>"}.
 */
void
aa_sign_object(StringInfo buf, uint64 txid, uint64 counter)
{
	Assert(buf->len > 0 && buf->data[buf->len - 1] == '}');
	buf->len--;
	aa_put_lit(buf, ",\"sig\":");
	put_signature(buf, txid, counter);
	aa_put_char(buf, '}');
}

/*
 * Sign a message that is a JSON array (a compact row), not yet closed: the
 * signature becomes its last element, then the bracket closes it.
 */
void
aa_sign_array(StringInfo buf, uint64 txid, uint64 counter)
{
	aa_put_char(buf, ',');
	put_signature(buf, txid, counter);
	aa_put_char(buf, ']');
}

/* Whether the 16 characters are lowercase hex digits. */
static bool
is_mac_hex(const char *p)
{
	int			i;

	for (i = 0; i < AA_SIG_HEX_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/*
 * Whether the 16 hex digits are the MAC of a signature version's data under
 * any of the keys (the current key first: the one nearly all events carry).
 */
static bool
mac_matches(const char *hex, int version, uint64 txid, uint64 counter)
{
	char		expect[AA_SIG_HEX_LEN];
	int			k;

	for (k = 0; k < nkeys; k++)
	{
		mac_hex(version == 1 ? mac_v1(k, txid) : mac_v2(k, txid, counter), expect);
		if (memcmp(hex, expect, AA_SIG_HEX_LEN) == 0)
			return true;
	}
	return false;
}

/*
 * Whether a message carries a valid signature under one of this server's keys, of
 * either version (see the header comment); read from its end.  On success
 * *sig says what it signs and where the text before the signature ends.
 * It does not say whether the signature was used already: decode.c keeps
 * the numbers.
 */
bool
aa_verify_message(const char *msg, size_t len, AASignature *sig)
{
	const char *end = msg + len;
	const char *hex;
	const char *p;
	uint64		counter;
	uint64		txid;
	bool		in_array;

	if (nkeys == 0 || len < AA_SIG_HEX_LEN + 8)
		return false;
	if (end[-1] == '}')
		in_array = false;
	else if (end[-1] == ']')
		in_array = true;
	else
		return false;
	if (end[-2] != '"')
		return false;
	hex = end - 2 - AA_SIG_HEX_LEN;
	if (!is_mac_hex(hex))
		return false;

	if (hex[-1] == '"' && !in_array)
	{
		/* version 1: ,"txid":N,"sig":"<mac of N>"} */
		const char *key = hex - (sizeof(AA_SIG_KEY) - 1);

		if (key - msg < 8 || memcmp(key, AA_SIG_KEY, sizeof(AA_SIG_KEY) - 1) != 0)
			return false;
		p = aa_uint64_before(msg, key, &txid);
		if (p == NULL || p - msg < 8 ||
			memcmp(p - 8, AA_TXID_KEY, sizeof(AA_TXID_KEY) - 1) != 0)
			return false;
		if (!mac_matches(hex, 1, txid, 0))
			return false;
		sig->version = 1;
		sig->txid = txid;
		sig->counter = 0;
		sig->in_array = false;
		sig->body_len = key - msg;
		return true;
	}

	/* version 2: "<txid>:<counter>:<mac>" */
	if (hex[-1] != ':' ||
		(p = aa_uint64_before(msg, hex - 1, &counter)) == NULL ||
		p - msg < 2 || p[-1] != ':' ||
		(p = aa_uint64_before(msg, p - 1, &txid)) == NULL ||
		p - msg < 2 || p[-1] != '"')
		return false;
	p--;						/* the opening quote */
	if (in_array)
	{
		if (p[-1] != ',')
			return false;
		p--;
	}
	else
	{
		p -= sizeof(AA_SIG_KEY) - 2;
		if (p < msg || memcmp(p, AA_SIG_KEY, sizeof(AA_SIG_KEY) - 2) != 0)
			return false;
	}
	if (!mac_matches(hex, 2, txid, counter))
		return false;
	sig->version = 2;
	sig->txid = txid;
	sig->counter = counter;
	sig->in_array = in_array;
	sig->body_len = p - msg;
	return true;
}

/*
 * The key of digests (common/digest.h), derived from an event key: a digest
 * proves the stream's head to whoever holds the server's key, and a MAC
 * under the event key itself must never double as a message signature.
 */
static void
digest_key(int k, uint64 *d0, uint64 *d1)
{
	static const char label0[] = "activity_audit digest key 0";
	static const char label1[] = "activity_audit digest key 1";

	*d0 = aa_siphash24(keys[k][0], keys[k][1], (const unsigned char *) label0, sizeof(label0) - 1);
	*d1 = aa_siphash24(keys[k][0], keys[k][1], (const unsigned char *) label1, sizeof(label1) - 1);
}

/* The MAC of a digest's signed text under key k. */
static uint64
digest_mac(int k, const AADigest *d)
{
	char		text[AA_DIGEST_TEXT_MAX];
	int			len = aa_digest_signed_text(d, text, sizeof(text));
	uint64		d0;
	uint64		d1;

	digest_key(k, &d0, &d1);
	return aa_siphash24(d0, d1, (const unsigned char *) text, len);
}

/* Sign a digest under the current key: fills d->sig. */
void
aa_digest_sign(AADigest *d)
{
	if (nkeys == 0)
		aa_require_preload();
	mac_hex(digest_mac(0, d), d->sig);
	d->sig[AA_DIGEST_SIG_LEN] = '\0';
}

/* Whether a digest's sig is the MAC under one of the keys. */
bool
aa_digest_sig_ok(const AADigest *d)
{
	char		expect[AA_SIG_HEX_LEN];
	int			k;

	if (strlen(d->sig) != AA_DIGEST_SIG_LEN)
		return false;
	for (k = 0; k < nkeys; k++)
	{
		mac_hex(digest_mac(k, d), expect);
		if (memcmp(expect, d->sig, AA_SIG_HEX_LEN) == 0)
			return true;
	}
	return false;
}

/*-------------------------------------------------------------------------
 *
 * sign.c
 *		The event key and the MAC that proves an event was written by the
 *		audit trigger and not by anybody calling pg_logical_emit_message().
 *
 * The key is 16 random bytes in $PGDATA/pg_activity_audit/event_key, made
 * on the first start and read by the postmaster when it preloads the
 * library, so every backend and the writer inherit it and no SQL can read
 * it.
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

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/builtins.h"

#include "activity_audit.h"
#include "common/sign.h"
#include "common/siphash.h"
#include "common/stream_format.h"
#include "common/stream_line.h"
#include "common/strbuf.h"

#define AA_KEY_FILE		AA_STATE_DIR "/event_key"
#define AA_KEY_LEN		16

/* 0.1's signature: ,"sig":"0123456789abcdef"} (see sign.h) */
#define AA_SIG_PREFIX	AA_SIG_KEY
#define AA_SIG_LEN		(sizeof(AA_SIG_PREFIX) - 1 + AA_SIG_HEX_LEN + 2)

static uint64 key0;
static uint64 key1;
static bool key_loaded = false;

/*
 * Read the event key, making it on the first start.  Runs in the postmaster
 * (from _PG_init, with the data directory as working directory); a failure
 * stops the server, since events could not be authenticated.
 */
void
aa_load_event_key(void)
{
	unsigned char key[AA_KEY_LEN];
	int			fd;

	if (mkdir(AA_STATE_DIR, S_IRWXU) != 0 && errno != EEXIST)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", AA_STATE_DIR)));

	fd = open(AA_KEY_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0 && errno == ENOENT)
	{
		const char *tmp = AA_KEY_FILE ".tmp";

		if (!pg_strong_random(key, sizeof(key)))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate the activity_audit event key")));
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
		if (fd < 0 || write(fd, key, sizeof(key)) != sizeof(key) ||
			pg_fsync(fd) != 0 || close(fd) != 0)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmp)));
		/* FATAL: it does not return on failure */
		(void) durable_rename(tmp, AA_KEY_FILE, FATAL);
		fd = open(AA_KEY_FILE, O_RDONLY | PG_BINARY, 0);
	}
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", AA_KEY_FILE)));
	if (read(fd, key, sizeof(key)) != sizeof(key))
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" does not hold a %d-byte key", AA_KEY_FILE, AA_KEY_LEN),
				 errhint("Remove the file to make a new key; events written under the old key will then be rejected.")));
	close(fd);
	key0 = aa_load_le64(key);
	key1 = aa_load_le64(key + 8);
	explicit_bzero(key, sizeof(key));
	key_loaded = true;
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

/* Version 1 (0.1): the MAC of the transaction id alone. */
static uint64
mac_v1(uint64 txid)
{
	unsigned char bytes[8];
	int			i;

	for (i = 0; i < 8; i++)
		bytes[i] = (unsigned char) (txid >> (8 * i));
	return aa_siphash24(key0, key1, bytes, sizeof(bytes));
}

/* Version 2: the MAC of the transaction id and the message's number. */
static uint64
mac_v2(uint64 txid, uint64 counter)
{
	unsigned char bytes[16];
	int			i;

	for (i = 0; i < 8; i++)
	{
		bytes[i] = (unsigned char) (txid >> (8 * i));
		bytes[8 + i] = (unsigned char) (counter >> (8 * i));
	}
	return aa_siphash24(key0, key1, bytes, sizeof(bytes));
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

	if (!key_loaded)
		aa_require_preload();
	aa_put_char(buf, '"');
	put_u64(buf, txid);
	aa_put_char(buf, ':');
	put_u64(buf, counter);
	aa_put_char(buf, ':');
	mac_hex(mac_v2(txid, counter), hex);
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
 * Whether a message carries a valid signature under this server's key, of
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
	char		expect[AA_SIG_HEX_LEN];
	uint64		counter;
	uint64		txid;
	bool		in_array;

	if (!key_loaded || len < AA_SIG_HEX_LEN + 8)
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
		mac_hex(mac_v1(txid), expect);
		if (memcmp(hex, expect, AA_SIG_HEX_LEN) != 0)
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
	mac_hex(mac_v2(txid, counter), expect);
	if (memcmp(hex, expect, AA_SIG_HEX_LEN) != 0)
		return false;
	sig->version = 2;
	sig->txid = txid;
	sig->counter = counter;
	sig->in_array = in_array;
	sig->body_len = p - msg;
	return true;
}

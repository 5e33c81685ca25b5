/*-------------------------------------------------------------------------
 *
 * sign.c
 *		The event key and the MAC that proves an event was written by the
 *		audit trigger and not by anybody calling pg_logical_emit_message().
 *
 * The key is 16 random bytes in $PGDATA/pg_activity_audit/event_key, made
 * on the first start and read by the postmaster when it preloads the
 * library, so every backend and the writer inherit it and no SQL can read
 * it.  The trigger ends each event with ,"sig":"<16 hex digits>": a
 * SipHash-2-4 MAC, under that key, of the event's top-level transaction id
 * (its "txid" key, the full 64-bit id, which never repeats).
 *
 * Why the transaction and not the whole text: the threat is a session
 * that writes a message with our prefix itself (pg_logical_emit_message).
 * It cannot compute the MAC of its own transaction without the key, and it
 * cannot read the events of its transaction from the WAL without the
 * privileges that would also let it read the key; a real event copied
 * into another transaction names the wrong txid, which the writer checks
 * against the commit record.  The text itself is protected like all WAL,
 * by the record's CRC and by only the server writing WAL.  A MAC of eight
 * bytes costs the trigger nothing measurable; one over the whole event
 * cost about a quarter of the trigger's own work.
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

#include "activity_audit.h"
#include "common/sign.h"
#include "common/stream_format.h"
#include "common/strbuf.h"

#define AA_KEY_FILE		AA_STATE_DIR "/event_key"
#define AA_KEY_LEN		16

/* ,"sig":"0123456789abcdef"} (see sign.h) */
#define AA_SIG_PREFIX	AA_SIG_KEY
#define AA_SIG_LEN		(sizeof(AA_SIG_PREFIX) - 1 + 16 + 2)

static uint64 key0;
static uint64 key1;
static bool key_loaded = false;

#define ROTL(x, b) (uint64) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

/* Little-endian 64-bit load, whatever the platform. */
static inline uint64
load_le64(const unsigned char *p)
{
	return (uint64) p[0] | ((uint64) p[1] << 8) | ((uint64) p[2] << 16) |
		((uint64) p[3] << 24) | ((uint64) p[4] << 32) | ((uint64) p[5] << 40) |
		((uint64) p[6] << 48) | ((uint64) p[7] << 56);
}

/* SipHash-2-4 of data under the event key. */
static uint64
siphash24(const unsigned char *data, size_t len)
{
	uint64		v0 = UINT64CONST(0x736f6d6570736575) ^ key0;
	uint64		v1 = UINT64CONST(0x646f72616e646f6d) ^ key1;
	uint64		v2 = UINT64CONST(0x6c7967656e657261) ^ key0;
	uint64		v3 = UINT64CONST(0x7465646279746573) ^ key1;
	const unsigned char *end = data + (len & ~((size_t) 7));
	uint64		b = ((uint64) len) << 56;
	int			left = len & 7;

	for (; data < end; data += 8)
	{
		uint64		m = load_le64(data);

		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	switch (left)
	{
		case 7:
			b |= ((uint64) data[6]) << 48;
			/* FALLTHROUGH */
		case 6:
			b |= ((uint64) data[5]) << 40;
			/* FALLTHROUGH */
		case 5:
			b |= ((uint64) data[4]) << 32;
			/* FALLTHROUGH */
		case 4:
			b |= ((uint64) data[3]) << 24;
			/* FALLTHROUGH */
		case 3:
			b |= ((uint64) data[2]) << 16;
			/* FALLTHROUGH */
		case 2:
			b |= ((uint64) data[1]) << 8;
			/* FALLTHROUGH */
		case 1:
			b |= ((uint64) data[0]);
			break;
		case 0:
			break;
	}
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

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
	key0 = load_le64(key);
	key1 = load_le64(key + 8);
	explicit_bzero(key, sizeof(key));
	key_loaded = true;
}

/* The MAC of a transaction id, as 16 lowercase hex digits. */
static void
txid_mac_hex(uint64 txid, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[8];
	uint64		mac;
	int			i;

	for (i = 0; i < 8; i++)
		bytes[i] = (unsigned char) (txid >> (8 * i));
	mac = siphash24(bytes, sizeof(bytes));
	for (i = 0; i < 16; i++)
		out[i] = hex[(mac >> (60 - 4 * i)) & 0xF];
}

/*
 * Sign the event in buf, which ends with its closing brace, for top-level
 * transaction txid: the brace is replaced by ,"sig":"..."}.  Computed once
 * per transaction.
 */
void
aa_sign_event(StringInfo buf, uint64 txid)
{
	static uint64 cached_txid = 0;
	static char cached_sig[AA_SIG_LEN];

	Assert(buf->len > 0 && buf->data[buf->len - 1] == '}');
	if (!key_loaded)
		aa_require_preload();
	if (txid != cached_txid || cached_sig[0] == '\0')
	{
		memcpy(cached_sig, AA_SIG_PREFIX, sizeof(AA_SIG_PREFIX) - 1);
		txid_mac_hex(txid, cached_sig + sizeof(AA_SIG_PREFIX) - 1);
		cached_sig[AA_SIG_LEN - 2] = '"';
		cached_sig[AA_SIG_LEN - 1] = '}';
		cached_txid = txid;
	}
	buf->len--;
	aa_put(buf, cached_sig, AA_SIG_LEN);
}

/*
 * Whether a message is an event the trigger signed: it ends with
 * ,"txid":N,"sig":"<MAC of N>"}.  On success *body_len is the length of the
 * text before the "sig" key (that text plus a closing brace is the event as
 * delivered) and *txid the transaction it names.
 */
bool
aa_verify_event(const char *msg, size_t len, size_t *body_len, uint64 *txid)
{
	static char expect[16];
	static uint64 expect_txid;
	static bool expect_valid = false;
	size_t		body;
	const char *p;
	uint64		value = 0;
	uint64		scale = 1;

	if (!key_loaded || len < AA_SIG_LEN + 2)
		return false;
	body = len - AA_SIG_LEN;
	if (memcmp(msg + body, AA_SIG_PREFIX, sizeof(AA_SIG_PREFIX) - 1) != 0 ||
		msg[len - 2] != '"' || msg[len - 1] != '}')
		return false;

	/* the digits of "txid", just before the signature */
	p = msg + body;
	while (p > msg && p[-1] >= '0' && p[-1] <= '9' && (msg + body) - p < 20)
	{
		p--;
		value += (uint64) (*p - '0') * scale;
		scale *= 10;
	}
	if (p == msg + body || p - msg < 8 || memcmp(p - 8, AA_TXID_KEY, 8) != 0)
		return false;

	/* a transaction's events share their MAC: compute it once */
	if (!expect_valid || value != expect_txid)
	{
		txid_mac_hex(value, expect);
		expect_txid = value;
		expect_valid = true;
	}
	if (memcmp(msg + body + sizeof(AA_SIG_PREFIX) - 1, expect, 16) != 0)
		return false;
	*body_len = body;
	*txid = value;
	return true;
}

/*-------------------------------------------------------------------------
 *
 * sign.h
 *		The signature that ends every WAL message of ours: the event key and
 *		the MAC (sign.c).  The trigger signs, the writer verifies.  What
 *		the messages contain is common/message.h's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_SIGN_H
#define AA_SIGN_H

#include "lib/stringinfo.h"

/* Prefix of the logical-decoding messages that carry events. */
#define AA_MESSAGE_PREFIX	"activity_audit"

/*
 * The signature, version 2, is one JSON string at the very end of the
 * message:
 *
 *	 "<txid>:<counter>:<16 lowercase hex>"
 *
 * txid is the top-level transaction's full 64-bit id, counter the
 * message's number in that transaction, from 1.  In a message that is a
 * JSON object it is the value of a last key "sig" (,"sig":"..."}); in one
 * that is an array, its last element (,"..."]).
 *
 * Version 1 (release 0.1) ended an event with ,"txid":N,"sig":"<hex>"}:
 * the MAC of N alone.
 */
#define AA_TXID_KEY			",\"txid\":"
#define AA_SIG_KEY			",\"sig\":\""
#define AA_SIG_HEX_LEN		16

/* more than the signature adds to a message, with its key and separators */
#define AA_SIGNATURE_ROOM	128

/* What a verified signature signs (aa_verify_message). */
typedef struct AASignature
{
	int			version;		/* 1: release 0.1's; 2: with a counter */
	uint64		txid;			/* the top-level transaction it names */
	uint64		counter;		/* its number in it (version 2) */
	bool		in_array;		/* the message is a JSON array */
	size_t		body_len;		/* length of the text before the signature:
								 * before ,"sig" or before its array element's
								 * comma */
} AASignature;

/* event keys (event_key.c loads them, sign.c uses them) */
#define AA_KEY_LEN			16
#define AA_MAX_KEYS			8

extern void aa_load_event_key(void);
extern bool aa_add_event_key(const unsigned char *key);
extern void aa_sign_object(StringInfo buf, uint64 txid, uint64 counter);
extern void aa_sign_array(StringInfo buf, uint64 txid, uint64 counter);
extern bool aa_verify_message(const char *msg, size_t len, AASignature *sig);

/* digests of the stream's head (common/digest.h) */
struct AADigest;
extern void aa_digest_sign(struct AADigest *d);
extern bool aa_digest_sig_ok(const struct AADigest *d);

#endif							/* AA_SIGN_H */

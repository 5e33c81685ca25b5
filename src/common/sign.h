/*-------------------------------------------------------------------------
 *
 * sign.h
 *		The WAL message envelope of events and its authentication: the
 *		prefix of our logical-decoding messages, the event key and the MAC
 *		(sign.c).  The trigger signs, the writer verifies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_SIGN_H
#define AA_SIGN_H

#include "lib/stringinfo.h"

/* Prefix of the logical-decoding messages that carry events. */
#define AA_MESSAGE_PREFIX	"activity_audit"

/*
 * A message's content is the event's JSON object ending in two keys, always
 * in this form:
 *
 *	 ...,"txid":<digits>,"sig":"<16 lowercase hex>"}
 *
 * capture/event.c writes "txid" as the event's last key; aa_sign_event()
 * replaces the closing brace with the "sig" key; aa_verify_event() reads
 * the txid right before it; writer/txnbuf.c keeps the text before ,"sig"
 * and closes it with a brace again: that is the delivered event.
 */
#define AA_TXID_KEY			",\"txid\":"
#define AA_SIG_KEY			",\"sig\":\""

extern void aa_load_event_key(void);
extern void aa_sign_event(StringInfo buf, uint64 txid);
extern bool aa_verify_event(const char *msg, size_t len, size_t *body_len,
							uint64 *txid);

#endif							/* AA_SIGN_H */

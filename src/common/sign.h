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

extern void aa_load_event_key(void);
extern void aa_sign_event(StringInfo buf, uint64 txid);
extern bool aa_verify_event(const char *msg, size_t len, size_t *body_len,
							uint64 *txid);

#endif							/* AA_SIGN_H */

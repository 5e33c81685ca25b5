/*-------------------------------------------------------------------------
 *
 * digest.h
 *		Digests of the stream's head (SPEC section 9): what the writer logs
 *		as "AUDIT DIGEST: {...}" and digest() returns, read back, and
 *		checked against a stream by verify(digests) and the offline tool
 *		(digest.c).
 *
 * A hash chain proves every line up to the last one, but not that the last
 * line is the last event: lines cut from the end leave an intact chain.  A
 * digest kept elsewhere (a log collector, an external job) names a seq and
 * its hash; a stream that lacks that seq, or holds it with another hash,
 * was cut or rewritten.
 *
 * Plain C with no PostgreSQL headers, so that tools/activity_audit_verify
 * links it too.  The signature ("sig", a MAC under a key derived from the
 * event key) is the server's: common/sign.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_DIGEST_H
#define AA_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream_format.h"
#include "common/stream_line.h"

/* the server-log line: AUDIT DIGEST: {"seq":N,"hash":"..",...} */
#define AA_DIGEST_LOG_PREFIX	"AUDIT DIGEST: "
#define AA_DIGEST_SIG_LEN		16
#define AA_DIGEST_TEXT_MAX		256

typedef struct AADigest
{
	uint64_t	seq;
	char		hash[AA_HASH_HEX_LEN + 1];
	uint64_t	lsn;
	char		committed_at[AA_UTC_LEN + 1];
	char		sig[AA_DIGEST_SIG_LEN + 1];	/* lowercase hex; "" when unsigned */
} AADigest;

extern int	aa_digest_format(const AADigest *d, char *out, size_t size);
extern bool aa_digest_parse(const char *text, size_t len, AADigest *d);
extern int	aa_digest_signed_text(const AADigest *d, char *out, size_t size);

/* Checking a stream, line by verified line, against digests. */
typedef struct AADigestCheck
{
	AADigest   *digests;		/* sorted by seq (aa_digest_check_init) */
	int			n;
	int			next;			/* the first not passed yet */
	int			matched;		/* found with their hash */
	int			before_first;	/* name a seq before the stream's first line */
	uint64_t	anchor_seq;		/* the digest the stream starts after; 0: none */
	uint64_t	first_seq;		/* the stream's first seq; 0: no line yet */
	bool		failed;
	uint64_t	bad_seq;
	char		detail[AA_CHAIN_DETAIL_LEN];
} AADigestCheck;

extern void aa_digest_check_init(AADigestCheck *c, AADigest *digests, int n);
extern void aa_digest_check_line(AADigestCheck *c, uint64_t seq, const char *hash);
extern void aa_digest_check_end(AADigestCheck *c, uint64_t last_seq);
extern bool aa_digest_anchor(void *check, uint64_t seq, const char *prev_hash);

#endif							/* AA_DIGEST_H */

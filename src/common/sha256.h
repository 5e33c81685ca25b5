/*-------------------------------------------------------------------------
 *
 * sha256.h
 *		SHA-256 of the stream's hash chain, shared by the server and the
 *		offline verifier.
 *
 * Plain C with no PostgreSQL headers, so that tools/activity_audit_verify
 * (which must run without a server) and the writer compute the chain with
 * the very same code.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_SHA256_H
#define AA_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define AA_SHA256_HEX_LEN 64

/* a digest in progress */
typedef struct AASha256
{
	uint32_t	H[8];
	unsigned char buf[64];		/* bytes not yet making a whole block */
	size_t		buffered;
	uint64_t	total;			/* bytes added so far */
} AASha256;

extern const char *aa_sha256_choose(int allow_accel);
extern void aa_sha256_init(AASha256 *ctx);
extern void aa_sha256_update(AASha256 *ctx, const void *data, size_t len);
extern void aa_sha256_final_hex(AASha256 *ctx, char *hex);
extern void aa_sha256_hex_prefixed(const char *prefix, size_t prefix_len,
								   const char *data, size_t len, char *hex);

#endif							/* AA_SHA256_H */

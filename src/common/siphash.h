/*-------------------------------------------------------------------------
 *
 * siphash.h
 *		SipHash-2-4, the MAC of the events' signatures (siphash.c).  Shared
 *		by the extension (common/sign.c) and the test programs that have to
 *		sign like an older release did, so it is plain C.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_SIPHASH_H
#define AA_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

extern uint64_t aa_load_le64(const unsigned char *p);
extern uint64_t aa_siphash24(uint64_t k0, uint64_t k1, const unsigned char *data,
						   size_t len);

#endif							/* AA_SIPHASH_H */

/*-------------------------------------------------------------------------
 *
 * siphash.c
 *		SipHash-2-4 (Aumasson and Bernstein), the keyed hash of the events'
 *		signatures.  Written from the paper's reference description; plain
 *		C without PostgreSQL's headers, so test programs can link it.
 *
 *-------------------------------------------------------------------------
 */
#include "common/siphash.h"

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

/* Little-endian 64-bit load, whatever the platform. */
uint64_t
aa_load_le64(const unsigned char *p)
{
	return (uint64_t) p[0] | ((uint64_t) p[1] << 8) | ((uint64_t) p[2] << 16) |
		((uint64_t) p[3] << 24) | ((uint64_t) p[4] << 32) | ((uint64_t) p[5] << 40) |
		((uint64_t) p[6] << 48) | ((uint64_t) p[7] << 56);
}

/*
 * SipHash-2-4 of data under the 128-bit key (k0, k1): a keyed hash that is
 * fast on short input, which is all the signatures need.
 */
uint64_t
aa_siphash24(uint64_t k0, uint64_t k1, const unsigned char *data, size_t len)
{
	uint64_t	v0 = UINT64_C(0x736f6d6570736575) ^ k0;
	uint64_t	v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
	uint64_t	v2 = UINT64_C(0x6c7967656e657261) ^ k0;
	uint64_t	v3 = UINT64_C(0x7465646279746573) ^ k1;
	const unsigned char *end = data + (len & ~((size_t) 7));
	uint64_t	b = ((uint64_t) len) << 56;
	int			left = len & 7;

	for (; data < end; data += 8)
	{
		uint64_t	m = aa_load_le64(data);

		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	switch (left)
	{
		case 7:
			b |= ((uint64_t) data[6]) << 48;
			/* FALLTHROUGH */
		case 6:
			b |= ((uint64_t) data[5]) << 40;
			/* FALLTHROUGH */
		case 5:
			b |= ((uint64_t) data[4]) << 32;
			/* FALLTHROUGH */
		case 4:
			b |= ((uint64_t) data[3]) << 24;
			/* FALLTHROUGH */
		case 3:
			b |= ((uint64_t) data[2]) << 16;
			/* FALLTHROUGH */
		case 2:
			b |= ((uint64_t) data[1]) << 8;
			/* FALLTHROUGH */
		case 1:
			b |= ((uint64_t) data[0]);
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

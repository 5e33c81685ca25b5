/*-------------------------------------------------------------------------
 *
 * sha256.c
 *		SHA-256 (FIPS 180-4) for the stream's hash chain.
 *
 * Every delivered line is hashed once by the writer and again by each
 * verification, so this is on the writer's per-event path.  A library
 * digest (OpenSSL through pg_cryptohash) re-initialises its method object
 * for every message, which cost more than the hashing itself for lines of
 * about 800 bytes; the chain always hashes one 64-byte prefix plus one line,
 * which this code does in place with almost no set-up.  The x86 SHA
 * extensions are used when the CPU has them and they agree with the
 * portable code (checked once by aa_sha256_choose).
 *
 * No PostgreSQL headers: tools/activity_audit_verify links this file too.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/sha256.h"

/* FIPS 180-4, sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2 */

/* 4.2.2: first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes */
static const uint32_t K256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

/* 5.3.3: initial hash value */
static const uint32_t H256_INIT[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
};

#define ROTR(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z)	(((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x)	(ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x)	(ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x)	(ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x)	(ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

static inline uint32_t
load_be32(const unsigned char *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

/*
 * One round of 6.2.2 step 3 with the working variables renamed instead of
 * shifted: T1 = h + BSIG1(e) + Ch(e,f,g) + K[t] + W[t]; d += T1;
 * h = T1 + BSIG0(a) + Maj(a,b,c).
 */
#define ROUND(a, b, c, d, e, f, g, h, t) \
	do { \
		uint32_t	t1_ = (h) + BSIG1(e) + CH(e, f, g) + K256[t] + W[t]; \
		(d) += t1_; \
		(h) = t1_ + BSIG0(a) + MAJ(a, b, c); \
	} while (0)

/* 6.2.2: process nblocks 64-byte message blocks */
static void
sha256_blocks_portable(uint32_t H[8], const unsigned char *p, size_t nblocks)
{
	while (nblocks-- > 0)
	{
		uint32_t	W[64];
		uint32_t	a, b, c, d, e, f, g, h;
		int			t;

		/* step 1: message schedule */
		for (t = 0; t < 16; t++)
			W[t] = load_be32(p + 4 * t);
		for (t = 16; t < 64; t++)
			W[t] = SSIG1(W[t - 2]) + W[t - 7] + SSIG0(W[t - 15]) + W[t - 16];

		/* step 2 */
		a = H[0];
		b = H[1];
		c = H[2];
		d = H[3];
		e = H[4];
		f = H[5];
		g = H[6];
		h = H[7];

		/* step 3, eight rounds per iteration */
		for (t = 0; t < 64; t += 8)
		{
			ROUND(a, b, c, d, e, f, g, h, t);
			ROUND(h, a, b, c, d, e, f, g, t + 1);
			ROUND(g, h, a, b, c, d, e, f, t + 2);
			ROUND(f, g, h, a, b, c, d, e, t + 3);
			ROUND(e, f, g, h, a, b, c, d, t + 4);
			ROUND(d, e, f, g, h, a, b, c, t + 5);
			ROUND(c, d, e, f, g, h, a, b, t + 6);
			ROUND(b, c, d, e, f, g, h, a, t + 7);
		}

		/* step 4 */
		H[0] += a;
		H[1] += b;
		H[2] += c;
		H[3] += d;
		H[4] += e;
		H[5] += f;
		H[6] += g;
		H[7] += h;

		p += 64;
	}
}

/*
 * The same computation with the x86 SHA extensions, when the CPU has them
 * (checked at run time, and against the portable code at start-up).
 * SHA256RNDS2 does two rounds of 6.2.2 step 3 on the state held as {A,B,E,F}
 * and {C,D,G,H}; SHA256MSG1/MSG2 compute the message schedule of step 1
 * four words at a time.
 */
#if (defined(__x86_64__) || defined(__i386__)) && \
	(defined(__GNUC__) || defined(__clang__))
#define HAVE_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1,ssse3")))
static void
sha256_blocks_shani(uint32_t H[8], const unsigned char *p, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11,
									   4, 5, 6, 7, 0, 1, 2, 3);
	__m128i		v0,
				v1,
				abef,
				cdgh;

	/* {a,b,c,d}, {e,f,g,h} -> {A,B,E,F}, {C,D,G,H} (dword 0 lowest) */
	v0 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &H[0]), 0xB1);
	v1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &H[4]), 0xB1);
	abef = _mm_unpacklo_epi64(v1, v0);	/* f e b a */
	cdgh = _mm_unpackhi_epi64(v1, v0);	/* h g d c */

	while (nblocks-- > 0)
	{
		__m128i		m[16];
		__m128i		abef0 = abef;
		__m128i		cdgh0 = cdgh;
		int			i;

		for (i = 0; i < 4; i++)
			m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) (p + 16 * i)),
									bswap);
		/* W[t] = SSIG1(W[t-2]) + W[t-7] + SSIG0(W[t-15]) + W[t-16] */
		for (i = 4; i < 16; i++)
			m[i] = _mm_sha256msg2_epu32(
										_mm_add_epi32(_mm_sha256msg1_epu32(m[i - 4], m[i - 3]),
													  _mm_alignr_epi8(m[i - 1], m[i - 2], 4)),
										m[i - 1]);
		for (i = 0; i < 16; i++)
		{
			__m128i		wk = _mm_add_epi32(m[i],
										   _mm_loadu_si128((const __m128i *) &K256[4 * i]));
			__m128i		t;

			t = abef;
			abef = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			cdgh = t;
			wk = _mm_shuffle_epi32(wk, 0x0E);
			t = abef;
			abef = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			cdgh = t;
		}
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
		p += 64;
	}

	/* back to {a,b,c,d}, {e,f,g,h} */
	v0 = _mm_shuffle_epi32(_mm_unpackhi_epi64(abef, cdgh), 0xB1);
	v1 = _mm_shuffle_epi32(_mm_unpacklo_epi64(abef, cdgh), 0xB1);
	_mm_storeu_si128((__m128i *) &H[0], v0);
	_mm_storeu_si128((__m128i *) &H[4], v1);
}

static int
cpu_has_sha_ni(void)
{
	unsigned int a,
				b,
				c,
				d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!(c & (1u << 9)) || !(c & (1u << 19)))	/* SSSE3, SSE4.1 */
		return 0;
	if (__get_cpuid_max(0, NULL) < 7)
		return 0;
	__cpuid_count(7, 0, a, b, c, d);
	return (b & (1u << 29)) != 0;	/* SHA */
}
#endif							/* x86 */

static void (*sha256_blocks) (uint32_t H[8], const unsigned char *p,
							  size_t nblocks) = sha256_blocks_portable;

/* Start a digest. */
void
aa_sha256_init(AASha256 *ctx)
{
	memcpy(ctx->H, H256_INIT, sizeof(ctx->H));
	ctx->buffered = 0;
	ctx->total = 0;
}

/* Add bytes: whole blocks are hashed in place, only a remainder is copied. */
void
aa_sha256_update(AASha256 *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;

	ctx->total += len;
	if (ctx->buffered > 0)
	{
		size_t		take = 64 - ctx->buffered;

		if (take > len)
			take = len;
		memcpy(ctx->buf + ctx->buffered, p, take);
		ctx->buffered += take;
		p += take;
		len -= take;
		if (ctx->buffered < 64)
			return;
		sha256_blocks(ctx->H, ctx->buf, 1);
		ctx->buffered = 0;
	}
	if (len >= 64)
	{
		sha256_blocks(ctx->H, p, len / 64);
		p += len - len % 64;
		len %= 64;
	}
	memcpy(ctx->buf, p, len);
	ctx->buffered = len;
}

/*
 * Finish (5.1.1 padding: 0x80, zeros, the length in bits as 64-bit big
 * endian) and write the digest as 64 lowercase hex digits plus a NUL.
 */
void
aa_sha256_final_hex(AASha256 *ctx, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char tail[128];
	size_t		rest = ctx->buffered;
	size_t		tail_len = (rest + 1 + 8 <= 64) ? 64 : 128;
	uint64_t	bits = ctx->total * 8;
	int			i;

	memcpy(tail, ctx->buf, rest);
	tail[rest] = 0x80;
	memset(tail + rest + 1, 0, tail_len - rest - 1 - 8);
	for (i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (unsigned char) (bits >> (8 * i));
	sha256_blocks(ctx->H, tail, tail_len / 64);

	for (i = 0; i < 8; i++)
	{
		int			j;

		for (j = 0; j < 4; j++)
		{
			unsigned int byte = (ctx->H[i] >> (24 - 8 * j)) & 0xff;

			hex[8 * i + 2 * j] = digits[byte >> 4];
			hex[8 * i + 2 * j + 1] = digits[byte & 0x0f];
		}
	}
	hex[AA_SHA256_HEX_LEN] = '\0';
}

/* The chain's digest: SHA-256 of "prefix" (the previous hash) then "data". */
void
aa_sha256_hex_prefixed(const char *prefix, size_t prefix_len,
					   const char *data, size_t len, char *hex)
{
	AASha256	ctx;

	aa_sha256_init(&ctx);
	aa_sha256_update(&ctx, prefix, prefix_len);
	aa_sha256_update(&ctx, data, len);
	aa_sha256_final_hex(&ctx, hex);
}

/*
 * Pick the block function: the SHA extensions if allowed, the CPU has them
 * and they agree with the portable code on a few messages.  Returns the
 * name of the one chosen, or NULL if the portable code fails its own
 * self-test (a miscompiled build must not write or accept a chain).
 * Call once before aa_sha256_hex_prefixed; calling again is harmless.
 */
const char *
aa_sha256_choose(int allow_accel)
{
	/* FIPS 180-4 example: SHA-256("abc") */
	static const char abc_hex[] =
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint32_t	H[8];
	unsigned char block[64];
	int			i;

	/* self-test of the portable code: one padded block holding "abc" */
	memset(block, 0, sizeof(block));
	memcpy(block, "abc", 3);
	block[3] = 0x80;
	block[63] = 24;
	memcpy(H, H256_INIT, sizeof(H));
	sha256_blocks_portable(H, block, 1);
	for (i = 0; i < 8; i++)
	{
		char		w[9];

		snprintf(w, sizeof(w), "%08x", (unsigned int) H[i]);
		if (memcmp(w, abc_hex + 8 * i, 8) != 0)
			return NULL;
	}

#ifdef HAVE_SHA_NI
	if (allow_accel && cpu_has_sha_ni())
	{
		unsigned char msg[64 * 5];
		uint32_t	H1[8],
					H2[8];

		for (i = 0; i < (int) sizeof(msg); i++)
			msg[i] = (unsigned char) (i * 131 + 7);
		memcpy(H1, H256_INIT, sizeof(H1));
		memcpy(H2, H256_INIT, sizeof(H2));
		sha256_blocks_portable(H1, msg, 5);
		sha256_blocks_shani(H2, msg, 5);
		if (memcmp(H1, H2, sizeof(H1)) == 0)
		{
			sha256_blocks = sha256_blocks_shani;
			return "x86 SHA extensions";
		}
	}
#else
	(void) allow_accel;
#endif
	sha256_blocks = sha256_blocks_portable;
	return "portable";
}

/*-------------------------------------------------------------------------
 *
 * activity_audit_verify.c
 *		Offline verifier of the activity_audit file stream (SPEC section 6).
 *
 *		activity_audit_verify [-q] DIR
 *
 * Reads every regular file of DIR whose name ends in ".jsonl", in byte-wise
 * name order (which is stream order), and checks the hash chain:
 *
 *	- every line ends with ,"prev_hash":"<64 hex>","hash":"<64 hex>"}
 *	- hash = lowercase hex SHA-256 of (prev_hash followed by the line's text
 *	  up to but excluding its last ,"prev_hash" key)
 *	- the first event of the stream has seq 1 and prev_hash of 64 zeros;
 *	  every later prev_hash is its predecessor's hash, across files
 *	- seq (the integer after the last ,"seq": before ,"lsn") grows by
 *	  exactly 1 from line to line and from file to file.
 *
 * The first problem is reported with its file and line, the seq found there
 * and the "first bad seq": the first seq that cannot be verified, so events
 * 1 .. first bad seq - 1 are intact.  A last line without its trailing
 * newline is an event the writer is still appending: a warning, not counted.
 *
 * Exit status: 0 intact chain, 1 broken chain, 2 usage or I/O error.
 *
 * Standalone: needs neither a database nor libpq.  SHA-256 is implemented
 * here from FIPS 180-4.
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_INTACT 0
#define EXIT_BROKEN 1
#define EXIT_ERROR	2

#define HEXLEN 64
/* ,"prev_hash":"<64>","hash":"<64>"} */
#define SUFFIX_LEN (14 + HEXLEN + 10 + HEXLEN + 2)

#define READ_CHUNK (4 * 1024 * 1024)

/* ---------------------------------------------------------------------
 * SHA-256 (FIPS 180-4, sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2)
 * ---------------------------------------------------------------------
 */

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

/*
 * SHA-256 of the 64 bytes "prefix" followed by "len" bytes of "data",
 * written as 64 lowercase hex digits into "hex".  The prefix is exactly one
 * block, so the data is hashed in place; only its tail is copied for the
 * padding of 5.1.1.
 */
static void
sha256_hex_prefixed(const char *prefix, const char *data, size_t len,
					char *hex)
{
	static const char digits[] = "0123456789abcdef";
	uint32_t	H[8];
	unsigned char tail[128];
	size_t		full = len / 64;
	size_t		rest = len % 64;
	size_t		tail_len;
	uint64_t	bits = ((uint64_t) len + 64) * 8;
	int			i;

	memcpy(H, H256_INIT, sizeof(H));
	sha256_blocks(H, (const unsigned char *) prefix, 1);
	sha256_blocks(H, (const unsigned char *) data, full);

	/* padding: 0x80, zeros, 64-bit big-endian length in bits */
	memcpy(tail, data + full * 64, rest);
	tail[rest] = 0x80;
	tail_len = (rest + 1 + 8 <= 64) ? 64 : 128;
	memset(tail + rest + 1, 0, tail_len - rest - 1 - 8);
	for (i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (unsigned char) (bits >> (8 * i));
	sha256_blocks(H, tail, tail_len / 64);

	for (i = 0; i < 8; i++)
	{
		int			j;

		for (j = 0; j < 4; j++)
		{
			unsigned int byte = (H[i] >> (24 - 8 * j)) & 0xff;

			hex[8 * i + 2 * j] = digits[byte >> 4];
			hex[8 * i + 2 * j + 1] = digits[byte & 0x0f];
		}
	}
}

/*
 * Pick the SHA-256 block function: the SHA extensions if the CPU has them
 * and they agree with the portable code on a few messages (environment
 * variable ACTIVITY_AUDIT_VERIFY_PORTABLE=1 forces the portable code).
 * Returns the name of the one chosen.
 */
static const char *
sha256_choose(void)
{
	/* FIPS 180-4 example: SHA-256("abc") */
	static const char abc_hex[] =
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	const char *force = getenv("ACTIVITY_AUDIT_VERIFY_PORTABLE");
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
		{
			fprintf(stderr, "activity_audit_verify: SHA-256 self-test failed\n");
			exit(EXIT_ERROR);
		}
	}

#ifdef HAVE_SHA_NI
	if ((force == NULL || strcmp(force, "1") != 0) && cpu_has_sha_ni())
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
	(void) force;
#endif
	sha256_blocks = sha256_blocks_portable;
	return "portable";
}

/* ---------------------------------------------------------------------
 * The chain check
 * ---------------------------------------------------------------------
 */

static const char ZERO_HASH[HEXLEN + 1] =
"0000000000000000000000000000000000000000000000000000000000000000";

typedef struct Verifier
{
	const char *dir;
	int			quiet;

	/* chain state */
	int64_t		events;			/* lines verified */
	int64_t		last_seq;		/* seq of the last verified line, 0 if none */
	char		prev_hash[HEXLEN];	/* hash of the last verified line */

	/* current file */
	const char *file;
	int64_t		lineno;
	int64_t		file_events;
	int64_t		file_first_seq;

	/* first problem */
	int			broken;
	char		problem[1024];
	int64_t		first_bad_seq;
} Verifier;

static void fail(Verifier *v, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

static void
fail(Verifier *v, const char *fmt,...)
{
	va_list		ap;
	int			n;

	n = snprintf(v->problem, sizeof(v->problem), "%s:%" PRId64 ": ",
				 v->file, v->lineno);
	if (n < 0 || (size_t) n >= sizeof(v->problem))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(v->problem + n, sizeof(v->problem) - n, fmt, ap);
	va_end(ap);
	v->broken = 1;
	v->first_bad_seq = v->last_seq + 1;
}

/* 1 for the bytes '0'-'9' and 'a'-'f' */
static unsigned char hexdigit[256];

static void
init_hexdigit(void)
{
	int			c;

	for (c = '0'; c <= '9'; c++)
		hexdigit[c] = 1;
	for (c = 'a'; c <= 'f'; c++)
		hexdigit[c] = 1;
}

static int
is_lower_hex(const char *p, size_t n)
{
	unsigned int ok = 1;
	size_t		i;

	for (i = 0; i < n; i++)
		ok &= hexdigit[(unsigned char) p[i]];
	return ok;
}

/* last occurrence of needle (length nlen) starting before "end" in s */
static const char *
find_last(const char *s, size_t end, const char *needle, size_t nlen)
{
	size_t		i;

	if (end < nlen)
		return NULL;
	for (i = end - nlen + 1; i-- > 0;)
	{
		if (s[i] == needle[0] && memcmp(s + i, needle, nlen) == 0)
			return s + i;
	}
	return NULL;
}

/*
 * Check one complete line (without its "\n").  Returns 0 when it is a valid
 * link of the chain, -1 (with v->broken set) otherwise.
 */
static int
check_line(Verifier *v, const char *line, size_t len)
{
	const char *suffix;
	const char *line_prev;
	const char *line_hash;
	const char *lsn;
	const char *seqkey;
	const char *p;
	size_t		cut;
	int64_t		seq = 0;
	int64_t		want = v->last_seq + 1;
	char		computed[HEXLEN];

	if (len == 0)
	{
		fail(v, "empty line");
		return -1;
	}

	/* ,"prev_hash":"<64 hex>","hash":"<64 hex>"} at the very end */
	if (len < SUFFIX_LEN)
	{
		fail(v, "malformed line: too short to end with the "
			 "\"prev_hash\" and \"hash\" keys");
		return -1;
	}
	cut = len - SUFFIX_LEN;
	suffix = line + cut;
	line_prev = suffix + 14;
	line_hash = line_prev + HEXLEN + 10;
	if (memcmp(suffix, ",\"prev_hash\":\"", 14) != 0 ||
		!is_lower_hex(line_prev, HEXLEN) ||
		memcmp(line_prev + HEXLEN, "\",\"hash\":\"", 10) != 0 ||
		!is_lower_hex(line_hash, HEXLEN) ||
		memcmp(line_hash + HEXLEN, "\"}", 2) != 0)
	{
		fail(v, "malformed line: does not end with "
			 ",\"prev_hash\":\"<64 hex>\",\"hash\":\"<64 hex>\"}");
		return -1;
	}

	/* seq: the integer after the last ,"seq": before ,"lsn" */
	lsn = find_last(line, cut, ",\"lsn\"", 6);
	seqkey = lsn ? find_last(line, (size_t) (lsn - line), ",\"seq\":", 7) : NULL;
	if (seqkey == NULL)
	{
		fail(v, "malformed line: no \"seq\" key followed by \"lsn\"");
		return -1;
	}
	p = seqkey + 7;
	if (p >= lsn || *p < '0' || *p > '9')
	{
		fail(v, "malformed line: \"seq\" is not an integer");
		return -1;
	}
	for (; p < lsn; p++)
	{
		if (*p < '0' || *p > '9' || seq > (INT64_MAX - 9) / 10)
		{
			fail(v, "malformed line: \"seq\" is not an integer "
				 "directly followed by \"lsn\"");
			return -1;
		}
		seq = seq * 10 + (*p - '0');
	}

	/* the line's own hash: catches any edit of its text */
	sha256_hex_prefixed(line_prev, line, cut, computed);
	if (memcmp(computed, line_hash, HEXLEN) != 0)
	{
		fail(v, "seq %" PRId64 ": hash mismatch: the line says %.64s, "
			 "its text hashes to %.64s (line edited)",
			 seq, line_hash, computed);
		return -1;
	}

	/* its place in the stream */
	if (v->events == 0)
	{
		if (seq != 1 && memcmp(line_prev, ZERO_HASH, HEXLEN) != 0)
		{
			fail(v, "stream incomplete at the start: the first event is "
				 "seq %" PRId64 " (prev_hash %.64s), events 1..%" PRId64
				 " are missing", seq, line_prev, seq - 1);
			return -1;
		}
		if (seq != 1)
		{
			fail(v, "seq %" PRId64 ": the first event of the stream must be "
				 "seq 1", seq);
			return -1;
		}
		if (memcmp(line_prev, ZERO_HASH, HEXLEN) != 0)
		{
			fail(v, "seq 1: prev_hash is %.64s, expected 64 zeros for the "
				 "first event of the stream", line_prev);
			return -1;
		}
	}
	else
	{
		if (seq != want)
		{
			if (seq > want)
			{
				char		missing[64];

				if (seq == want + 1)
					snprintf(missing, sizeof(missing), "event %" PRId64, want);
				else
					snprintf(missing, sizeof(missing), "events %" PRId64 "..%" PRId64,
							 want, seq - 1);
				fail(v, "seq %" PRId64 ": seq gap: expected seq %" PRId64
					 " after seq %" PRId64 ", %s missing (%s)",
					 seq, want, v->last_seq, missing,
					 v->lineno == 1 ?
					 "a file missing, or lines deleted or reordered" :
					 "lines deleted or reordered");
			}
			else
				fail(v, "seq %" PRId64 ": seq repeated or out of order: "
					 "expected seq %" PRId64 " after seq %" PRId64
					 " (line inserted or lines reordered)",
					 seq, want, v->last_seq);
			return -1;
		}
		if (memcmp(line_prev, v->prev_hash, HEXLEN) != 0)
		{
			fail(v, "seq %" PRId64 ": prev_hash is %.64s, but the hash of "
				 "seq %" PRId64 " is %.64s (chain broken)",
				 seq, line_prev, v->last_seq, v->prev_hash);
			return -1;
		}
	}

	memcpy(v->prev_hash, line_hash, HEXLEN);
	v->last_seq = seq;
	if (v->file_events == 0)
		v->file_first_seq = seq;
	v->file_events++;
	v->events++;
	return 0;
}

/*
 * Check every line of one file.  Returns 0 when done (chain intact so far
 * or broken: see v->broken), -1 on an I/O error (reported on stderr).
 * "last" tells whether this is the stream's last file, where a final line
 * without "\n" is a partially written event.
 */
static char *buf = NULL;
static size_t bufsize = 0;

static int
check_file(Verifier *v, const char *path, int last, int *partial)
{
	int			fd;
	size_t		start = 0;		/* first unprocessed byte */
	size_t		end = 0;		/* end of valid data */
	size_t		scan = 0;		/* no "\n" in [start, scan) */
	int			eof = 0;

	*partial = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
	{
		fprintf(stderr, "activity_audit_verify: could not open \"%s\": %s\n",
				path, strerror(errno));
		return -1;
	}

	for (;;)
	{
		char	   *nl = NULL;

		if (scan < end)
			nl = memchr(buf + scan, '\n', end - scan);
		if (nl != NULL)
		{
			size_t		len = (size_t) (nl - (buf + start));

			v->lineno++;
			if (check_line(v, buf + start, len) < 0)
				break;
			start = scan = (size_t) (nl - buf) + 1;
			continue;
		}
		scan = end;

		if (eof)
		{
			if (end > start)
			{
				v->lineno++;
				if (last)
				{
					*partial = 1;
					fprintf(stdout, "WARNING: %s:%" PRId64 ": the last line has "
							"no trailing newline (%zu bytes): a partially "
							"written event, not counted\n",
							v->file, v->lineno, end - start);
				}
				else
					fail(v, "incomplete line (no trailing newline, %zu bytes) "
						 "at the end of a file that is not the last",
						 end - start);
			}
			break;
		}

		/* need more data: move the pending part to the front, grow if full */
		if (start > 0)
		{
			memmove(buf, buf + start, end - start);
			end -= start;
			scan -= start;
			start = 0;
		}
		if (bufsize - end < READ_CHUNK / 2)
		{
			size_t		newsize = bufsize * 2;
			char	   *nb = realloc(buf, newsize);

			if (nb == NULL)
			{
				fprintf(stderr, "activity_audit_verify: out of memory reading "
						"\"%s\" (a line longer than %zu bytes)\n",
						path, bufsize);
				close(fd);
				return -1;
			}
			buf = nb;
			bufsize = newsize;
		}
		{
			ssize_t		n = read(fd, buf + end, bufsize - end);

			if (n < 0)
			{
				if (errno == EINTR)
					continue;
				fprintf(stderr, "activity_audit_verify: could not read \"%s\": %s\n",
						path, strerror(errno));
				close(fd);
				return -1;
			}
			if (n == 0)
				eof = 1;
			end += (size_t) n;
		}
	}

	close(fd);
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: byte-wise order */
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"activity_audit_verify checks the hash chain of an activity_audit stream.\n\n"
			"Usage:\n"
			"  activity_audit_verify [-q] DIR\n\n"
			"DIR is the file sink's directory (audit.log_directory, by default\n"
			"$PGDATA/log).  Every regular file of DIR named *.jsonl is read in\n"
			"name order.  No database connection is needed.\n\n"
			"Options:\n"
			"  -q, --quiet    do not list the files checked\n"
			"  -h, --help     show this help and exit\n\n"
			"Exit status: 0 intact chain, 1 broken chain, 2 usage or I/O error.\n");
}

int
main(int argc, char **argv)
{
	Verifier	v;
	const char *dir = NULL;
	DIR		   *d;
	struct dirent *de;
	char	  **names = NULL;
	size_t		nnames = 0;
	size_t		cap = 0;
	size_t		i;
	size_t		files_checked = 0;
	int			partial = 0;
	int			quiet = 0;
	int			argi;

	for (argi = 1; argi < argc; argi++)
	{
		const char *a = argv[argi];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			usage(stdout);
			return EXIT_INTACT;
		}
		else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
			quiet = 1;
		else if (strcmp(a, "--") == 0 && argi + 1 < argc && dir == NULL)
			dir = argv[++argi];
		else if (a[0] == '-' && a[1] != '\0')
		{
			fprintf(stderr, "activity_audit_verify: unknown option \"%s\"\n", a);
			usage(stderr);
			return EXIT_ERROR;
		}
		else if (dir == NULL)
			dir = a;
		else
		{
			fprintf(stderr, "activity_audit_verify: too many arguments\n");
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (dir == NULL)
	{
		fprintf(stderr, "activity_audit_verify: no directory given\n");
		usage(stderr);
		return EXIT_ERROR;
	}

	d = opendir(dir);
	if (d == NULL)
	{
		fprintf(stderr, "activity_audit_verify: could not open directory \"%s\": %s\n",
				dir, strerror(errno));
		return EXIT_ERROR;
	}
	for (;;)
	{
		size_t		nlen;
		char	   *path;
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
		{
			if (errno != 0)
			{
				fprintf(stderr, "activity_audit_verify: could not read directory \"%s\": %s\n",
						dir, strerror(errno));
				closedir(d);
				return EXIT_ERROR;
			}
			break;
		}
		nlen = strlen(de->d_name);
		if (nlen < 6 || strcmp(de->d_name + nlen - 6, ".jsonl") != 0)
			continue;
		path = malloc(strlen(dir) + nlen + 2);
		if (path == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		sprintf(path, "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
		{
			fprintf(stderr, "activity_audit_verify: could not stat \"%s\": %s\n",
					path, strerror(errno));
			closedir(d);
			return EXIT_ERROR;
		}
		free(path);
		if (!S_ISREG(st.st_mode))
			continue;
		if (nnames == cap)
		{
			char	  **nn;

			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof(char *));
			if (nn == NULL)
			{
				fprintf(stderr, "activity_audit_verify: out of memory\n");
				return EXIT_ERROR;
			}
			names = nn;
		}
		names[nnames] = strdup(de->d_name);
		if (names[nnames] == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		nnames++;
	}
	closedir(d);
	if (nnames > 1)
		qsort(names, nnames, sizeof(char *), cmp_names);

	bufsize = 2 * READ_CHUNK;
	buf = malloc(bufsize);
	if (buf == NULL)
	{
		fprintf(stderr, "activity_audit_verify: out of memory\n");
		return EXIT_ERROR;
	}

	memset(&v, 0, sizeof(v));
	v.dir = dir;
	v.quiet = quiet;
	memcpy(v.prev_hash, ZERO_HASH, HEXLEN);

	{
		const char *impl = sha256_choose();

		init_hexdigit();

		printf("activity_audit_verify: checking the stream in %s\n", dir);
		if (!quiet)
			printf("SHA-256: %s\n", impl);
	}
	if (nnames == 0)
		printf("WARNING: no audit stream files (*.jsonl) in %s\n", dir);

	for (i = 0; i < nnames; i++)
	{
		char	   *path = malloc(strlen(dir) + strlen(names[i]) + 2);
		int			file_partial;

		if (path == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		sprintf(path, "%s/%s", dir, names[i]);
		v.file = names[i];
		v.lineno = 0;
		v.file_events = 0;
		v.file_first_seq = 0;
		if (check_file(&v, path, i + 1 == nnames, &file_partial) < 0)
			return EXIT_ERROR;
		free(path);
		files_checked++;
		partial |= file_partial;
		if (!quiet && !v.broken)
		{
			if (v.file_events > 0)
				printf("  %s: %" PRId64 " events (seq %" PRId64 "..%" PRId64 ")\n",
					   names[i], v.file_events, v.file_first_seq, v.last_seq);
			else
				printf("  %s: no events\n", names[i]);
		}
		if (v.broken)
		{
			if (!quiet)
				printf("  %s: FAILED at line %" PRId64 "\n", names[i], v.lineno);
			break;
		}
	}

	printf("files checked: %zu of %zu\n", files_checked, nnames);
	if (v.events > 0)
		printf("events verified: %" PRId64 " (seq 1..%" PRId64 ")\n",
			   v.events, v.last_seq);
	else
		printf("events verified: 0\n");

	if (v.broken)
	{
		printf("first bad seq: %" PRId64 "\n", v.first_bad_seq);
		printf("problem: %s\n", v.problem);
		printf("RESULT: BROKEN - the hash chain is not intact\n");
		return EXIT_BROKEN;
	}

	if (v.events > 0)
		printf("last hash: %.64s\n", v.prev_hash);
	printf("RESULT: OK - the hash chain is intact%s\n",
		   partial ? " (a partially written last line was not counted)" : "");
	return EXIT_INTACT;
}

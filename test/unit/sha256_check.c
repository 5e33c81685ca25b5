/*-------------------------------------------------------------------------
 *
 * sha256_check.c
 *		Driver for test/t/023_sha256.pl: prints SHA-256 digests that
 *		src/sha256.c computes, for the test to compare with Digest::SHA.
 *
 *		sha256_check ACCEL     ACCEL 1: SHA extensions if the CPU has them,
 *		                       0: the portable code only
 *
 * First line: the implementation chosen.  Then, for every message length
 * 0..300 (bytes (i * 131 + len) & 0xff) and several chunk sizes, one line
 * "len chunk hex" with the message added in pieces of that size (so every
 * way a block boundary can fall is crossed), and one line "len prefixed hex"
 * for aa_sha256_hex_prefixed with a 64-byte prefix of 'p'.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"

int
main(int argc, char **argv)
{
	static const size_t chunks[] = {1, 3, 55, 56, 63, 64, 65, 128, 1000};
	unsigned char msg[300];
	char		prefix[64];
	char		hex[AA_SHA256_HEX_LEN + 1];
	const char *impl;
	size_t		len;

	if (argc != 2)
	{
		fprintf(stderr, "usage: sha256_check ACCEL\n");
		return 2;
	}
	impl = aa_sha256_choose(atoi(argv[1]));
	if (impl == NULL)
	{
		printf("self-test failed\n");
		return 1;
	}
	printf("%s\n", impl);
	memset(prefix, 'p', sizeof(prefix));

	for (len = 0; len <= sizeof(msg); len++)
	{
		size_t		c;
		size_t		i;

		for (i = 0; i < len; i++)
			msg[i] = (unsigned char) ((i * 131 + len) & 0xff);
		for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
		{
			AASha256	ctx;
			size_t		off;

			aa_sha256_init(&ctx);
			for (off = 0; off < len; off += chunks[c])
				aa_sha256_update(&ctx, msg + off,
								 len - off < chunks[c] ? len - off : chunks[c]);
			aa_sha256_final_hex(&ctx, hex);
			printf("%zu %zu %s\n", len, chunks[c], hex);
		}
		aa_sha256_hex_prefixed(prefix, sizeof(prefix), (const char *) msg, len, hex);
		printf("%zu prefixed %s\n", len, hex);
	}
	return 0;
}

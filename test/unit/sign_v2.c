/*-------------------------------------------------------------------------
 *
 * sign_v2.c
 *		Driver for test/t/051_undeliverable.pl: signs like the trigger does
 *		(signature version 2), so that the test can put signed messages the
 *		trigger never writes into the WAL, as someone who has the key can.
 *
 *		sign_v2 KEYFILE TXID COUNTER   prints the 16 hex digits of the MAC
 *		                               of TXID and COUNTER (SipHash-2-4 of
 *		                               their 8 little-endian bytes each)
 *		                               under the key in KEYFILE
 *
 * It uses src/common/siphash.c, the extension's own hash, and must agree
 * with src/common/sign.c's version 2.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/siphash.h"

int
main(int argc, char **argv)
{
	unsigned char key[16];
	unsigned char bytes[16];
	uint64_t	txid;
	uint64_t	counter;
	uint64_t	mac;
	FILE	   *f;
	int			i;

	if (argc != 4)
	{
		fprintf(stderr, "usage: sign_v2 KEYFILE TXID COUNTER\n");
		return 2;
	}
	if ((f = fopen(argv[1], "rb")) == NULL || fread(key, 1, 16, f) != 16)
	{
		fprintf(stderr, "sign_v2: cannot read a 16-byte key from %s\n", argv[1]);
		return 1;
	}
	fclose(f);
	txid = strtoull(argv[2], NULL, 10);
	counter = strtoull(argv[3], NULL, 10);
	for (i = 0; i < 8; i++)
	{
		bytes[i] = (unsigned char) (txid >> (8 * i));
		bytes[8 + i] = (unsigned char) (counter >> (8 * i));
	}
	mac = aa_siphash24(aa_load_le64(key), aa_load_le64(key + 8), bytes, 16);
	printf("%016" PRIx64 "\n", mac);
	return 0;
}

/*-------------------------------------------------------------------------
 *
 * sign_v1.c
 *		Driver for test/t/034_format1_upgrade.pl: signs like release 0.1
 *		did, so that the test can put 0.1's messages into the WAL.
 *
 *		sign_v1 KEYFILE TXID    prints the 16 hex digits of the MAC of TXID
 *		                        (SipHash-2-4 of its 8 little-endian bytes)
 *		                        under the key in KEYFILE
 *
 * It uses src/common/siphash.c, the extension's own hash, and must agree
 * with src/common/sign.c's version 1.
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
	unsigned char bytes[8];
	uint64_t	txid;
	uint64_t	mac;
	FILE	   *f;
	int			i;

	if (argc != 3)
	{
		fprintf(stderr, "usage: sign_v1 KEYFILE TXID\n");
		return 2;
	}
	if ((f = fopen(argv[1], "rb")) == NULL || fread(key, 1, 16, f) != 16)
	{
		fprintf(stderr, "sign_v1: cannot read a 16-byte key from %s\n", argv[1]);
		return 1;
	}
	fclose(f);
	txid = strtoull(argv[2], NULL, 10);
	for (i = 0; i < 8; i++)
		bytes[i] = (unsigned char) (txid >> (8 * i));
	mac = aa_siphash24(aa_load_le64(key), aa_load_le64(key + 8), bytes, 8);
	printf("%016" PRIx64 "\n", mac);
	return 0;
}

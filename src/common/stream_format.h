/*-------------------------------------------------------------------------
 *
 * stream_format.h
 *		The byte-level form of the delivered stream that the writer, the
 *		SQL readers, verify() and the offline tool all rely on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_STREAM_FORMAT_H
#define AA_STREAM_FORMAT_H

/* Directory under the data directory for the writer's own state. */
#define AA_STATE_DIR		"pg_activity_audit"

/*
 * The format of a delivered line, shared by the stream (stream.c) and its
 * readers (reader.c): every line ends with
 * ,"prev_hash":"<64 hex>","hash":"<64 hex>"} and the first prev_hash of a
 * stream is 64 zeros.
 */
#define AA_HASH_HEX_LEN		64
#define AA_ZERO_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define AA_PREV_HASH_KEY	",\"prev_hash\":\""
#define AA_HASH_KEY			"\",\"hash\":\""
#define AA_CHAIN_SUFFIX_LEN ((int) (sizeof(AA_PREV_HASH_KEY) - 1 + AA_HASH_HEX_LEN + \
									sizeof(AA_HASH_KEY) - 1 + AA_HASH_HEX_LEN + 2))

#endif							/* AA_STREAM_FORMAT_H */

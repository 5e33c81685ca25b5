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

/* The file sink's files: regular files named <something>.jsonl. */
#define AA_STREAM_FILE_SUFFIX ".jsonl"

/*
 * A delivered line is the event object as the trigger wrote it, without its
 * "sig" key (txnbuf.c strips it; sign.h), followed by the keys the writer
 * adds, always in this form and order (writer/stream.c formats them,
 * common/stream_line.c parses them):
 *
 *	 ,"seq":<digits>,"lsn":"<hex>/<hex>","committed_at":"<AA_UTC_LEN chars>"
 *	 ,"prev_hash":"<64 hex>","hash":"<64 hex>"}\n
 *
 * (one line; the leading comma is absent after an empty object "{").  The
 * chain's hash is SHA-256 of prev_hash followed by the line's text up to
 * its ,"prev_hash" key; the first prev_hash of a stream is 64 zeros.
 *
 * The event's own keys start with "timestamp" (AA_TIMESTAMP_PREFIX: the
 * readers take the time from there without parsing the line) and hold the
 * table as "table":"<name>" in plain form when the name needs no escaping
 * (history() pre-filters lines on that text).  "txid" is the event's last
 * key before "sig" in the WAL message (sign.c reads it from there).
 */
#define AA_HASH_HEX_LEN		64
#define AA_ZERO_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define AA_PREV_HASH_KEY	",\"prev_hash\":\""
#define AA_HASH_KEY			"\",\"hash\":\""
#define AA_SEQ_KEY			"\"seq\":"
#define AA_LSN_KEY			",\"lsn\":\""
#define AA_COMMITTED_AT_KEY "\",\"committed_at\":\""
#define AA_TIMESTAMP_PREFIX "{\"timestamp\":\""
#define AA_UTC_LEN			27	/* YYYY-MM-DDTHH:MM:SS.ffffffZ */
#define AA_CHAIN_SUFFIX_LEN ((int) (sizeof(AA_PREV_HASH_KEY) - 1 + AA_HASH_HEX_LEN + \
									sizeof(AA_HASH_KEY) - 1 + AA_HASH_HEX_LEN + 2))

#endif							/* AA_STREAM_FORMAT_H */

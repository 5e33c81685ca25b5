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

/*
 * The gap line: WAL that the writer needed was gone before it read it (its
 * slot invalidated by max_slot_wal_keep_size, segments removed, the slot
 * missing from a restored data directory), so the events in it are lost.
 * The writer says so in the stream instead of going on silently: one line,
 * a link of the chain like any other (its own seq, the same writer-added
 * keys), whose own keys are written by the writer alone (writer/gap.c,
 * through aa_gap_format()) in exactly this form and order:
 *
 *	 {"timestamp":"<UTC, when the loss was found>","level":"AUDIT",
 *	  "name":"audit.gap","message":"<text without '"' or '\'>",
 *	  "event_type":"WAL_LOST","reason":"<[a-z_]+>",
 *	  "system_identifier":"<digits>","timeline":<digits>,
 *	  "txid_upper_bound":<digits>,
 *	  "lost_from_lsn":"<X/X>","lost_to_lsn":"<X/X>"
 *
 * followed by the writer's keys, where "lsn" is lost_to_lsn and
 * "committed_at" is "timestamp".  The keys mean:
 *	 lost_from_lsn		the first WAL position the writer needed and could
 *						not read (0/0: unknown);
 *	 lost_to_lsn		the oldest WAL there was, where reading resumed: the
 *						start of a segment, so never the LSN of a commit,
 *						and every later line has a greater "lsn";
 *	 txid_upper_bound	every transaction that wrote events in the lost WAL
 *						has a "txid" below this (the next txid when the loss
 *						was found): later lines of transactions below it may
 *						lack that transaction's earlier events;
 *	 system_identifier, timeline	the server that lost the WAL
 *						(pg_control_system().system_identifier, as text,
 *						since JSON numbers past 2^53 are not portable): a
 *						loss is local to one server, unlike every other line;
 *	 reason				slot_invalidated, slot_missing or wal_removed.
 *
 * It begins like every event (AA_TIMESTAMP_PREFIX, then level, name and
 * message), so log_stream() and ClickHouse read it as one; it ends with
 * lost_to_lsn, which no event does (an event's last key is "txid"), so
 * that the writer's recovery, which reads only a line's end, tells a gap
 * line from an event (aa_line_parse() sets AALine.gap).
 */
#define AA_GAP_NAME			"audit.gap"
#define AA_GAP_EVENT_TYPE	"WAL_LOST"
#define AA_GAP_LOST_TO_KEY	",\"lost_to_lsn\":\""
#define AA_GAP_REASON_MAX	31

#endif							/* AA_STREAM_FORMAT_H */

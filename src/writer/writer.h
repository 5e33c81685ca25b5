/*-------------------------------------------------------------------------
 *
 * writer.h
 *		Declarations shared by the writer's files.
 *
 * Data flows one way: the worker's loop (worker.c) reads WAL records from
 * where its slot (slot.c) says, decode.c files our messages into
 * transaction buffers (txnbuf.c) and delivers a commit's events, those
 * dropped from memory read back from the WAL (spill_scan.c), through the
 * sinks (deliver.c) to the stream files (stream.c) and the server log;
 * WAL that is needed but gone is recorded as a gap (gap.c); status.c
 * shows the result, retention.c what holds the WAL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_WRITER_H
#define AA_WRITER_H

#include "access/xlogdefs.h"
#include "access/xlogreader.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "storage/fd.h"
#include "storage/latch.h"

#include "common/stream_format.h"

/* worker.c: the background worker */
extern void aa_register_writer(void);
extern void aa_writer_sleep(long ms);

/* worker_error.c: an ERROR in the worker is reported and retried */
extern void aa_writer_failed(XLogRecPtr lsn) pg_attribute_noreturn();

/* defined below */
typedef struct AATxn AATxn;
typedef struct AAStreamPos AAStreamPos;

/* status.c: shared status, flush() and writer_status() */
extern void aa_status_request_shmem(void);
extern void aa_status_set_worker(pid_t pid, Latch *latch);
extern void aa_status_set_error(const char *msg);
extern void aa_status_set_lasting_error(const char *msg);
extern void aa_status_error_until_progress(void);
extern int	aa_status_record_failure(XLogRecPtr lsn, const char *msg);
extern void aa_status_set_stream_seq(uint64 seq);
extern uint64 aa_status_stream_seq(void);
extern bool aa_status_retained_warned(void);
extern void aa_status_set_retained_warned(bool warned);
extern void aa_status_publish(XLogRecPtr next_lsn, uint64 events_delivered,
							  uint64 bytes_written, int pending_xacts,
							  uint64 forged_rejected, uint64 spilled_bytes,
							  const char *current_file,
							  const AAStreamPos *head,
							  const AATxn *oldest);

/* retention.c: the WAL the writer's slot keeps, and a warning past a limit */
extern int64 aa_retained_bytes(void);
extern void aa_retention_check(const AATxn *oldest);

/* txnbuf.c: the events of open transactions */
/* The kinds of our messages (common/message.h). */
typedef enum AAMessageKind
{
	AA_MSG_EVENT,				/* a whole event: full format, or 0.1's */
	AA_MSG_HEADER,				/* compact: what the rows share */
	AA_MSG_ROW					/* compact: one row's part */
} AAMessageKind;

/*
 * One of our messages as decode.c recognized it (aa_decode_message): what
 * its signature says, its kind, and the text to keep -- for an event, the
 * text before its "sig" key; for a header, the text before its signature;
 * for a row, the text before its header's number.
 */
typedef struct AAMessage
{
	int			version;		/* of its signature (common/sign.h) */
	uint64		txid;			/* the transaction it names (signed) */
	uint64		counter;		/* its number in it (version 2) */
	AAMessageKind kind;
	uint64		number;			/* header: its number; row: its header's */
	const char *data;
	Size		len;
} AAMessage;

/*
 * One buffered message: for an event, its text as delivered; for a header,
 * the text before its signature; for a row, the text before its header's
 * number.
 */
typedef struct AAEvent
{
	XLogRecPtr	lsn;
	uint64		txid;			/* the transaction it names (signed) */
	uint64		number;			/* header: its number; row: its header's */
	uint8		kind;			/* AAMessageKind */
	int			len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} AAEvent;

/* The allocation the buffered form of a message of len bytes needs. */
#define AA_EVENT_SIZE(len)	(offsetof(AAEvent, data) + (len) + 2)

/*
 * The events of one (sub)transaction, in WAL order.  Past
 * audit.writer_memory the events of the largest one are dropped from
 * memory ("spilled"); they are read back from the WAL at its commit
 * (spill_scan.c), which the writer's slot keeps from first_lsn on.  So the
 * spilled events are always a prefix: from spill_start (= first_lsn) to
 * spill_end, nspilled of them, and the events in memory come after.
 */
struct AATxn
{
	TransactionId xid;			/* hash key */
	XLogRecPtr	first_lsn;		/* its first event, in memory or not */
	uint64		txid;			/* the top-level transaction its first event
								 * names (signed), with its epoch */
	TimestampTz first_at;		/* its first event's "timestamp"; 0: none yet
								 * (a compact header comes before its rows) */
	char	   *gid;			/* prepared: the transaction's name, else NULL */
	TimestampTz prepared_at;	/* prepared: when */
	dlist_node	by_age;			/* in txnbuf.c's list in first_lsn order */
	List	   *events;			/* of AAEvent *, the part in memory */
	Size		mem_bytes;		/* their size */
	XLogRecPtr	spill_start;	/* first spilled event; invalid: none */
	XLogRecPtr	spill_end;		/* last spilled event */
	uint64		nspilled;		/* events from spill_start to spill_end */
	uint64		spill_bytes;	/* their length, for spilled_bytes */
	XLogRecPtr *rejected;		/* our messages of this xid that the first
								 * read rejected, ascending (see
								 * aa_txn_note_rejected) */
	int			nrejected;
	int			maxrejected;
	int			size_index;		/* place in txnbuf.c's by-size heap; -1 while
								 * none of its events is in memory */
};

/* Reads a transaction's events in memory, in WAL order. */
typedef struct AATxnCursor
{
	AATxn	   *txn;
	ListCell   *lc;				/* next event */
	AAEvent    *cur;			/* current event, NULL at the end */
} AATxnCursor;

extern void aa_txns_init(void);
extern void aa_txns_remove_spill_files(void);
extern AATxn *aa_txn_find(TransactionId xid);
extern void aa_event_fill(AAEvent *ev, XLogRecPtr lsn, const AAMessage *m);
extern void aa_txn_add(TransactionId xid, XLogRecPtr lsn, const AAMessage *m);
extern void aa_txn_note_rejected(TransactionId xid, XLogRecPtr lsn);
extern void aa_txn_drop(AATxn *txn);
extern void aa_txns_drop_before(TransactionId oldest_running);
extern void aa_txns_prepared(TransactionId top, TransactionId *subxacts,
							 int nsubxacts, const char *gid,
							 TimestampTz prepared_at);
extern AATxn *aa_txns_oldest(void);
extern int	aa_txns_count(void);
extern uint64 aa_txns_spilled_bytes(void);
extern void aa_cursor_start(AATxnCursor *c, AATxn *txn);
extern void aa_cursor_next(AATxnCursor *c);

/*
 * spill_scan.c: the spilled events of one commit's parts, read back from
 * the WAL in one pass, in WAL order.
 */
typedef struct AASpillScan AASpillScan;

extern AASpillScan *aa_spill_scan_begin(TransactionId top, AATxn **parts,
										int nparts);
extern AAEvent *aa_spill_scan_next(AASpillScan *scan);
extern void aa_spill_scan_end(AASpillScan *scan);

/* decode.c: what a WAL record means for the stream */
extern bool aa_decode_message(XLogReaderState *reader, AAMessage *m,
							  const char **why);
extern void aa_decode_record(XLogReaderState *reader);
extern uint64 aa_decode_forged_count(void);

/* counters.c: the message numbers each open transaction has used */
extern void aa_counters_init(void);
extern bool aa_counter_accept(uint64 txid, uint64 counter, XLogRecPtr lsn);
extern void aa_counter_forget(uint64 txid);
extern void aa_counters_forget_before(uint64 oldest_running);
extern XLogRecPtr aa_counters_needed_lsn(XLogRecPtr next_lsn);

/* format1.c: release 0.1's messages, delivered when written before */
extern void aa_format1_init(void);
extern bool aa_format1_allowed(XLogRecPtr lsn);
extern XLogRecPtr aa_format1_until(void);

/* assemble.c: compact messages into events */
/*
 * The largest event the writer delivers: its line (and the server log's
 * line, which jsonlog may escape to twice the size) must fit in one
 * allocation.  Any event the trigger writes is smaller (guc.h); a larger
 * or malformed one, signed by whoever has the key, is reported and skipped
 * (decode.c), never retried for ever.
 */
#define AA_MAX_DELIVERED_EVENT	(MaxAllocSize / 2 - AA_LINE_TAIL_MAX - 1024)

extern void aa_assemble_begin(void);
extern void aa_assemble_header(AAEvent *ev);
extern bool aa_assemble_row(AAEvent *ev, StringInfo out, const char **why);

/* deliver.c: the sinks */
extern void aa_deliver_open(void);
extern bool aa_deliver_already_done(XLogRecPtr commit_lsn, int index);
extern void aa_deliver_event(const char *event, int len, XLogRecPtr commit_lsn,
							 TimestampTz committed_at, bool first_of_commit);
extern void aa_deliver_sync(void);
extern void aa_deliver_reloaded(void);
extern uint64 aa_deliver_start_seq(void);
extern TimestampTz aa_deliver_last_committed_at(void);

/* digest_log.c: AUDIT DIGEST lines in the server log */
extern void aa_digest_tick(bool final);
extern uint64 aa_deliver_count(void);
extern bool aa_deliver_head(AAStreamPos *pos);

/*
 * stream.c: the delivered stream.  Everything here returns false with
 * *err set (palloc'd) on an I/O failure instead of throwing, so the writer
 * can report, back off and retry; nothing is lost or half-written: a failed
 * append leaves the files and the position exactly as before it.
 */
struct AAStreamPos
{
	uint64		seq;			/* seq of the last durable event; 0: none */
	XLogRecPtr	commit_lsn;		/* its commit LSN */
	int			events_at_lsn;	/* trailing events of that commit in the stream */
	char		hash[65];		/* its hash; 64 zeros before the first */

	/*
	 * The last line is a gap line (common/stream_format.h): all WAL before
	 * commit_lsn is accounted for, delivered or recorded as lost.  Set only
	 * by the recovery in aa_stream_open(), for slot.c to read at start;
	 * appends leave it alone.
	 */
	bool		after_gap;
};

extern bool aa_stream_open(char **err);
extern void aa_stream_position(AAStreamPos *pos);
extern bool aa_stream_append(const char *event, int len, XLogRecPtr commit_lsn,
							 TimestampTz committed_at, bool first_of_commit,
							 char **err);
extern bool aa_stream_sync(char **err);
extern bool aa_stream_needs_reopen(void);
extern void aa_stream_close(void);
extern const char *aa_stream_current_file(void);
extern uint64 aa_stream_bytes_written(void);


/*
 * stream.c's current file and the helpers stream_rotate.c uses to leave it
 * and start the next; nothing else touches these.
 */
typedef struct AAStreamFile
{
	int			fd;				/* -1: none */
	char	   *path;			/* as opened (TopMemoryContext) */
	char	   *name;			/* the file name part of path */
	char	   *directory;		/* audit.log_directory it was started under */
	char	   *pattern;		/* audit.log_filename it was started under */
	pg_time_t	started;		/* when it was started (for rotation_age) */
	off_t		size;			/* bytes written to it */
	bool		dirty;			/* written since the last fsync */
} AAStreamFile;

extern AAStreamFile aa_cur;
extern size_t aa_stream_buffered(void);
extern bool aa_stream_flush_wbuf(char **err);
extern bool aa_stream_sync_current(char **err);
extern bool aa_stream_check_in_place(char **err);
extern void aa_stream_drop_cached(bool all);
extern void aa_stream_forget_current(void);
extern void aa_stream_set_current(int fd, char *path, char *directory,
								  char *pattern, pg_time_t started, off_t size);

/* stream_rotate.c: starting the stream's files */
extern bool aa_stream_maybe_rotate(char **err);

/* line_out.c: the keys the writer adds to an event */
#define AA_LINE_TAIL_MAX	(128 + AA_CHAIN_SUFFIX_LEN + 2)
extern int	aa_line_tail(const char *event, int body_len, uint64 seq,
						 XLogRecPtr lsn, TimestampTz committed_at,
						 const char *prev_hash, char *out, char *hash);

/* stream_state.c: the state file and durable-file helpers */
#define AA_STATE_FILE		AA_STATE_DIR "/stream_state"
#define AA_STATE_TMP_FILE	AA_STATE_DIR "/stream_state.tmp"

/* What the state file says: the current file and where it started. */
typedef struct StreamState
{
	char	   *path;			/* the current file, as opened */
	char	   *directory;		/* audit.log_directory it was started under */
	char	   *pattern;		/* audit.log_filename it was started under */
	pg_time_t	started;		/* when it was started (for rotation_age) */
	AAStreamPos start;			/* stream position when it was started */
} StreamState;

extern bool aa_state_read(StreamState *st, bool *found, char **err);
extern bool aa_state_write(const StreamState *st, char **err);
extern void aa_state_free(StreamState *st);
extern bool aa_state_names_other(const char *path);
extern bool aa_state_missing_ok(char **err);
extern bool aa_fsync_path(const char *path, bool isdir, char **err);
extern bool aa_ensure_directory(const char *dir, char **err);
extern bool aa_write_all(int fd, const char *data, size_t len);

/* deliver.c: what the stream held when it was opened */
extern void aa_deliver_start_position(AAStreamPos *pos);

/* slot.c: the writer's replication slot */
extern void aa_slot_check_startup(void);
extern void aa_slot_wait_requirements(void);
extern XLogRecPtr aa_slot_start(const AAStreamPos *stream);
extern void aa_slot_advance(XLogRecPtr needed);
extern XLogRecPtr aa_slot_restart_lsn(void);

/* gap.c: WAL that is needed but gone */
extern XLogRecPtr aa_wal_oldest(void);
extern void aa_gap_record(XLogRecPtr lost_from, XLogRecPtr lost_to,
						  const char *reason);

/* stream_recover.c: the position from the current file's last lines */
extern bool aa_recover_tail(int fd, const char *path, off_t size,
							const AAStreamPos *start, AAStreamPos *pos,
							off_t *valid_end, char **err);

/* stream_cut.c: cutting a file back after a failed fsync */
extern bool aa_cut_after_failed_fsync(int fd, const char *path,
									  off_t synced_size, uint64 synced_seq,
									  char **err);
extern bool aa_cut_pending(void);
extern bool aa_cut_retry(int fd, char **err);

#endif							/* AA_WRITER_H */

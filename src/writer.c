/*-------------------------------------------------------------------------
 *
 * writer.c
 *		The writer: a background worker that follows the WAL and delivers
 *		committed audit events, in commit order and exactly once, to the
 *		sinks (the JSON Lines stream of stream.c, and the server log).
 *
 * It reads WAL with PostgreSQL's WAL reader and looks only at logical
 * messages with our prefix and at transaction records, so its cost follows
 * the audit volume, not the write volume.  Messages wait in per-transaction
 * buffers (keyed by the xid that wrote them, subtransactions included) until
 * a commit record delivers them, merged in WAL order, or an abort record
 * (or a running-xacts record proving the transaction gone) drops them.
 *
 * Exactly once: the stream's files are the truth about what was delivered
 * (stream.c recovers seq, hash and the last commit from them), and a
 * physical replication slot of the writer's own keeps the WAL back to the
 * oldest message not yet delivered.  After any restart the writer reads
 * from the slot's position again and skips what the files already hold.
 *
 * This file owns the settings of delivery, the shared status, the worker's
 * life cycle and the SQL functions flush() and writer_status(); it must not
 * format delivered lines (stream.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/rmgr.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogutils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/message.h"
#include "replication/slot.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "storage/standbydefs.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "activity_audit.h"
#include "writer.h"

/* The writer's replication slot. */
#define AA_SLOT_NAME		"activity_audit"

/* How long the writer sleeps at the end of the WAL, at most. */
#define AA_IDLE_MS			100

/* Retry back-off bounds after a sink error. */
#define AA_RETRY_MIN_MS		100
#define AA_RETRY_MAX_MS		10000

/* settings */
char	   *aa_sink = NULL;
char	   *aa_log_directory = NULL;
char	   *aa_log_filename = NULL;
int			aa_rotation_size = 100 * 1024;
int			aa_rotation_age = 24 * 60;
int			aa_file_mode = 0600;
int			aa_writer_memory = 64 * 1024;	/* kB */
bool		aa_sink_file_enabled = true;
bool		aa_sink_log_enabled = false;

/* Status shared with the SQL functions. */
typedef struct AAWriterShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when not running */
	Latch	   *latch;			/* to wake the writer */
	XLogRecPtr	read_lsn;		/* WAL read up to here */
	XLogRecPtr	delivered_lsn;	/* every commit before it is delivered */
	uint64		events_delivered;
	uint64		bytes_written;
	int			pending_xacts;
	uint64		spilled_bytes;
	uint64		forged_rejected;
	char		current_file[MAXPGPATH];
	char		last_error[512];
} AAWriterShared;

static AAWriterShared *writer_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One buffered event. */
typedef struct AAEvent
{
	XLogRecPtr	lsn;
	uint64		txid;			/* the transaction it names (signed) */
	int			len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} AAEvent;

/* The buffered events of one (sub)transaction, in WAL order. */
typedef struct AATxn
{
	TransactionId xid;			/* hash key */
	XLogRecPtr	first_lsn;
	List	   *events;			/* of AAEvent *, the part in memory */
	Size		mem_bytes;		/* their size */
	File		spill;			/* the earlier part, spilled to disk; -1 none */
	off_t		spill_size;
	uint64		nspilled;
} AATxn;

/* Reads a transaction's events in WAL order: spilled ones, then memory. */
typedef struct AATxnCursor
{
	AATxn	   *txn;
	uint64		file_left;		/* spilled events not read yet */
	off_t		file_pos;		/* next byte of the spill file to read */
	char	   *rbuf;			/* spill file contents read ahead */
	int			rbuf_size;
	int			rbuf_len;
	int			rbuf_pos;
	ListCell   *lc;				/* next event in memory */
	AAEvent    *cur;			/* current event, NULL at the end */
	AAEvent    *owned;			/* cur when read from the file */
} AATxnCursor;

/* Worker-local state. */
static HTAB *txns = NULL;
static MemoryContext txn_cxt = NULL;
static AAStreamPos start_pos;	/* what the stream held when opened */
static bool stream_open = false;	/* the file sink's stream is open */
static uint64 events_delivered = 0;
static uint64 forged_rejected = 0;
static Size buffered_bytes = 0;		/* events of open transactions in memory */
static uint64 spilled_bytes = 0;

PGDLLEXPORT void aa_writer_main(Datum main_arg);

PG_FUNCTION_INFO_V1(activity_audit_flush);
PG_FUNCTION_INFO_V1(activity_audit_writer_status);

/*
 * audit.sink: a comma list of file and log.  Checked when set, so a typo
 * is refused by SET/reload instead of silently dropping a sink.
 */
static bool
check_sink(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *items;
	ListCell   *lc;
	int		   *flags;

	if (!SplitIdentifierString(raw, ',', &items))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	if (items == NIL)
	{
		GUC_check_errdetail("At least one sink is needed: file, log or both.");
		return false;
	}
	flags = (int *) malloc(sizeof(int));
	if (flags == NULL)
		return false;
	*flags = 0;
	foreach(lc, items)
	{
		char	   *item = lfirst(lc);

		if (pg_strcasecmp(item, "file") == 0)
			*flags |= 1;
		else if (pg_strcasecmp(item, "log") == 0)
			*flags |= 2;
		else
		{
			GUC_check_errdetail("Unknown sink \"%s\"; the sinks are file and log.", item);
			free(flags);
			return false;
		}
	}
	*extra = flags;
	return true;
}

static void
assign_sink(const char *newval, void *extra)
{
	int			flags = *((int *) extra);

	aa_sink_file_enabled = (flags & 1) != 0;
	aa_sink_log_enabled = (flags & 2) != 0;
}

/* audit.log_directory: not empty. */
static bool
check_log_directory(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0')
	{
		GUC_check_errdetail("The audit file directory must not be empty.");
		return false;
	}
	return true;
}

/* audit.log_filename: a file name, not a path, on one line. */
static bool
check_log_filename(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0' || strchr(*newval, '/') != NULL ||
		strchr(*newval, '\n') != NULL)
	{
		GUC_check_errdetail("The audit file name pattern must be a non-empty file name without \"/\".");
		return false;
	}
	return true;
}

/* audit.file_mode shown in octal, like log_file_mode. */
static const char *
show_file_mode(void)
{
	static char buf[12];

	snprintf(buf, sizeof(buf), "%04o", aa_file_mode);
	return buf;
}

/* Define the delivery settings; called from _PG_init. */
void
aa_define_writer_gucs(void)
{
	DefineCustomStringVariable("audit.sink",
							   "Where the writer delivers audit events: file, log, or both.",
							   NULL, &aa_sink, "file", PGC_SIGHUP, GUC_LIST_INPUT,
							   check_sink, assign_sink, NULL);
	DefineCustomStringVariable("audit.log_directory",
							   "Directory of the audit file sink, relative to the data directory unless absolute.",
							   NULL, &aa_log_directory, "log", PGC_SIGHUP, 0,
							   check_log_directory, NULL, NULL);
	DefineCustomStringVariable("audit.log_filename",
							   "strftime pattern of the audit file names.",
							   NULL, &aa_log_filename, "audit-%Y%m%dT%H%M%S.jsonl",
							   PGC_SIGHUP, 0, check_log_filename, NULL, NULL);
	DefineCustomIntVariable("audit.rotation_size",
							"Start a new audit file past this size (0: never).",
							NULL, &aa_rotation_size, 100 * 1024, 0, INT_MAX / 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.rotation_age",
							"Start a new audit file after this long (0: never).",
							NULL, &aa_rotation_age, 24 * 60, 0, INT_MAX / 60,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.writer_memory",
							"Memory the writer may use for events of open transactions before spilling them to disk.",
							NULL, &aa_writer_memory, 64 * 1024, 64, INT_MAX / 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.file_mode",
							"Permissions of new audit files.",
							"The value is a numeric mode as accepted by chmod (octal with a leading 0).",
							&aa_file_mode, 0600, 0000, 0777,
							PGC_SIGHUP, 0, NULL, NULL, show_file_mode);
}

/* Ask for the shared status. */
static void
writer_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AAWriterShared)));
}

/* Create or attach to the shared status. */
static void
writer_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	writer_shared = ShmemInitStruct("activity_audit writer",
									sizeof(AAWriterShared), &found);
	if (!found)
	{
		memset(writer_shared, 0, sizeof(AAWriterShared));
		SpinLockInit(&writer_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Register the shared memory and the worker.  Only at preload: the worker
 * is one per cluster and is restarted by the postmaster if it dies.
 */
void
aa_register_writer(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = writer_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = writer_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "activity_audit");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aa_writer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "activity_audit writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "activity_audit writer");
	RegisterBackgroundWorker(&worker);
}

/* Record (or clear, with NULL) the last error, for writer_status(). */
static void
set_last_error(const char *msg)
{
	SpinLockAcquire(&writer_shared->mutex);
	strlcpy(writer_shared->last_error, msg ? msg : "",
			sizeof(writer_shared->last_error));
	SpinLockRelease(&writer_shared->mutex);
}

/* Reload the configuration on SIGHUP; leave on SIGTERM. */
static void
handle_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		/* "file" removed from audit.sink: close the stream; see open_stream */
		if (!aa_sink_file_enabled && stream_open)
		{
			aa_stream_close();
			stream_open = false;
		}
	}
	if (ShutdownRequestPending)
		proc_exit(0);
}

/* Sleep on the latch, waking for signals, flush() requests or timeout. */
static void
writer_sleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	handle_interrupts();
}

/*
 * Report a sink failure once in writer_status() and the log.  When the
 * stream can only be trusted again after reopening (a failed fsync: data
 * appended since the last one may be gone), the worker exits after a pause
 * and the postmaster restarts it: it then recovers the stream's true end
 * from the files and reads the WAL again from its slot, which never moves
 * past what was synced.  Otherwise the caller retries the same operation.
 */
static void
sink_failed(const char *err, bool *reported, long *wait)
{
	if (!*reported)
		ereport(WARNING,
				(errmsg("activity_audit writer cannot deliver: %s", err),
				 errhint("Delivery resumes by itself once the sink is writable; WAL is kept meanwhile.")));
	*reported = true;
	set_last_error(err);
	writer_sleep(*wait);
	*wait = Min(*wait * 2, AA_RETRY_MAX_MS);
	if (stream_open && aa_stream_needs_reopen())
	{
		ereport(LOG,
				(errmsg("activity_audit writer restarts to recover the audit stream")));
		proc_exit(1);
	}
}

/* Whether the file sink is on and its stream open (see handle_interrupts). */
static inline bool
file_sink_on(void)
{
	return aa_sink_file_enabled && stream_open;
}

/*
 * Run a file-sink operation until it succeeds (see sink_failed), or until a
 * reload switches the file sink off: the operation is then dropped, so that
 * a sink that cannot be written does not hold up the others.
 */
#define RETRY_FILE_SINK(call) \
	do { \
		char	   *err_ = NULL; \
		long		wait_ = AA_RETRY_MIN_MS; \
		bool		reported_ = false; \
		while (file_sink_on() && !(call)) \
		{ \
			sink_failed(err_, &reported_, &wait_); \
			if (err_) \
				pfree(err_); \
		} \
		if (reported_) \
			sink_recovered(); \
	} while (0)

/* After a reported failure: clear it and say why delivery goes on. */
static void
sink_recovered(void)
{
	set_last_error(NULL);
	if (file_sink_on())
		ereport(LOG, (errmsg("activity_audit writer delivers again")));
	else
		ereport(LOG,
				(errmsg("activity_audit writer no longer writes the audit stream files: \"file\" was removed from audit.sink")));
}

/*
 * Open the stream of the file sink: at start, and when a reload switches the
 * file sink on.  It is retried while it fails and the file sink stays on.
 * Events the files already hold are skipped from then on (start_pos).
 */
static void
open_stream(void)
{
	char	   *err = NULL;
	long		wait = AA_RETRY_MIN_MS;
	bool		reported = false;

	while (aa_sink_file_enabled && !aa_stream_open(&err))
	{
		sink_failed(err, &reported, &wait);
		if (err)
			pfree(err);
		err = NULL;
	}
	if (aa_sink_file_enabled)
	{
		stream_open = true;
		aa_stream_position(&start_pos);
	}
	if (reported)
		sink_recovered();
}

/* Deliver one event to every configured sink. */
static void
deliver_event(AAEvent *ev, XLogRecPtr commit_lsn, TimestampTz committed_at,
			  bool first_of_commit)
{
	if (aa_sink_file_enabled && !stream_open)
		open_stream();
	RETRY_FILE_SINK((err_ = NULL,
					 aa_stream_append(ev->data, ev->len, commit_lsn,
									  committed_at, first_of_commit, &err_)));
	if (aa_sink_log_enabled)
		ereport(LOG,
				(errmsg("AUDIT: %.*s", ev->len, ev->data),
				 errhidestmt(true), errhidecontext(true)));
	events_delivered++;
}

/* The buffer of an xid, or NULL. */
static AATxn *
find_txn(TransactionId xid)
{
	return hash_search(txns, &xid, HASH_FIND, NULL);
}

/* Free a transaction's buffer. */
static void
drop_txn(AATxn *txn)
{
	ListCell   *lc;

	foreach(lc, txn->events)
		pfree(lfirst(lc));
	list_free(txn->events);
	buffered_bytes -= txn->mem_bytes;
	if (txn->spill >= 0)
	{
		char		path[MAXPGPATH];

		FileClose(txn->spill);
		snprintf(path, sizeof(path), AA_STATE_DIR "/spill/%u.spill", txn->xid);
		unlink(path);
	}
	hash_search(txns, &txn->xid, HASH_REMOVE, NULL);
}

/*
 * Move a transaction's events from memory to its spill file, so that a
 * transaction of millions of rows does not make the writer grow with it.
 * The file is private to the writer and rebuilt from WAL after a restart.
 * Spill files are virtual file descriptors: thousands of spilled
 * subtransactions (a PL/pgSQL loop with an exception block per row) share
 * the process's real descriptors instead of running out of them.
 */
static void
spill_txn(AATxn *txn)
{
	ListCell   *lc;
	StringInfoData buf;

	if (txn->spill < 0)
	{
		char		path[MAXPGPATH];

		snprintf(path, sizeof(path), AA_STATE_DIR "/spill/%u.spill", txn->xid);
		txn->spill = PathNameOpenFile(path, O_RDWR | O_CREAT | O_TRUNC | PG_BINARY);
		if (txn->spill < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create spill file \"%s\": %m", path)));
		txn->spill_size = 0;
	}
	initStringInfo(&buf);
	foreach(lc, txn->events)
	{
		AAEvent    *ev = lfirst(lc);

		appendBinaryStringInfo(&buf, (char *) ev, offsetof(AAEvent, data) + ev->len);
		spilled_bytes += ev->len;
		txn->nspilled++;
		pfree(ev);
	}
	if (FileWrite(txn->spill, buf.data, buf.len, txn->spill_size,
				  PG_WAIT_EXTENSION) != buf.len)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write spill file of transaction %u: %m", txn->xid)));
	txn->spill_size += buf.len;
	pfree(buf.data);
	list_free(txn->events);
	txn->events = NIL;
	buffered_bytes -= txn->mem_bytes;
	txn->mem_bytes = 0;
}

/*
 * Make at least 'need' bytes of the spill file available at rbuf_pos,
 * reading ahead in large pieces.
 */
static void
cursor_fill(AATxnCursor *c, int need)
{
	int			have = c->rbuf_len - c->rbuf_pos;

	if (have >= need)
		return;
	if (c->rbuf_pos > 0)
	{
		memmove(c->rbuf, c->rbuf + c->rbuf_pos, have);
		c->rbuf_pos = 0;
		c->rbuf_len = have;
	}
	if (need > c->rbuf_size)
	{
		c->rbuf_size = need;
		c->rbuf = repalloc(c->rbuf, c->rbuf_size);
	}
	while (c->rbuf_len < need)
	{
		int			n = FileRead(c->txn->spill, c->rbuf + c->rbuf_len,
								 c->rbuf_size - c->rbuf_len, c->file_pos,
								 PG_WAIT_EXTENSION);

		if (n <= 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read spill file of transaction %u: %m", c->txn->xid)));
		c->rbuf_len += n;
		c->file_pos += n;
	}
}

/* Move a cursor to the transaction's next event (cur NULL at the end). */
static void
cursor_next(AATxnCursor *c)
{
	if (c->owned)
	{
		pfree(c->owned);
		c->owned = NULL;
	}
	if (c->file_left > 0)
	{
		AAEvent		head;
		int			hlen = offsetof(AAEvent, data);

		cursor_fill(c, hlen);
		memcpy(&head, c->rbuf + c->rbuf_pos, hlen);
		cursor_fill(c, hlen + head.len);
		c->owned = palloc(hlen + head.len + 1);
		memcpy(c->owned, c->rbuf + c->rbuf_pos, hlen + head.len);
		c->owned->data[head.len] = '\0';
		c->rbuf_pos += hlen + head.len;
		c->file_left--;
		c->cur = c->owned;
		return;
	}
	if (c->lc)
	{
		c->cur = lfirst(c->lc);
		c->lc = lnext(c->txn->events, c->lc);
		return;
	}
	c->cur = NULL;
}

/* Position a cursor on a transaction's first event. */
static void
cursor_start(AATxnCursor *c, AATxn *txn)
{
	c->txn = txn;
	c->file_left = txn->nspilled;
	c->file_pos = 0;
	c->rbuf = NULL;
	c->rbuf_size = c->rbuf_len = c->rbuf_pos = 0;
	if (txn->nspilled > 0)
	{
		/*
		 * Small: a commit may merge a thousand spilled subtransactions at
		 * once; cursor_fill enlarges it for a bigger event.
		 */
		c->rbuf_size = 16 * 1024;
		c->rbuf = palloc(c->rbuf_size);
	}
	c->lc = list_head(txn->events);
	c->cur = NULL;
	c->owned = NULL;
	cursor_next(c);
}

/* Release what a cursor read ahead. */
static void
cursor_end(AATxnCursor *c)
{
	if (c->owned)
		pfree(c->owned);
	if (c->rbuf)
		pfree(c->rbuf);
}

/*
 * Keep one of our events until its transaction ends: the signed text before
 * its "sig" key, closed again with a brace.
 */
static void
buffer_message(TransactionId xid, XLogRecPtr lsn, uint64 event_txid,
			   const char *data, Size len)
{
	AATxn	   *txn;
	AAEvent    *ev;
	bool		found;
	MemoryContext old;

	txn = hash_search(txns, &xid, HASH_ENTER, &found);
	if (!found)
	{
		txn->first_lsn = lsn;
		txn->events = NIL;
		txn->mem_bytes = 0;
		txn->spill = -1;
		txn->spill_size = 0;
		txn->nspilled = 0;
	}
	old = MemoryContextSwitchTo(txn_cxt);
	ev = palloc(offsetof(AAEvent, data) + len + 2);
	ev->lsn = lsn;
	ev->txid = event_txid;
	ev->len = len + 1;
	memcpy(ev->data, data, len);
	ev->data[len] = '}';
	ev->data[len + 1] = '\0';
	txn->events = lappend(txn->events, ev);
	MemoryContextSwitchTo(old);
	/* count what the allocation really takes, so the limit is the memory */
	txn->mem_bytes += GetMemoryChunkSpace(ev);
	buffered_bytes += GetMemoryChunkSpace(ev);
	if (buffered_bytes > (Size) aa_writer_memory * 1024)
		spill_txn(txn);
}

/*
 * Whether an event belongs to the committing transaction.  Its signature
 * covers the transaction it names; a real event copied into another
 * transaction, by someone who has seen one, names the wrong one.
 */
static inline bool
event_txid_matches(AAEvent *ev, TransactionId top)
{
	return (TransactionId) (ev->txid & 0xFFFFFFFF) == top;
}

/* Count and report an event that must not be delivered. */
static void
reject_forged(XLogRecPtr lsn, const char *why)
{
	forged_rejected++;
	ereport(WARNING,
			(errmsg("activity_audit writer rejected a message with prefix \"%s\" at %X/%X that the audit trigger did not write",
					AA_MESSAGE_PREFIX, LSN_FORMAT_ARGS(lsn)),
			 errdetail("%s", why),
			 errhint("Messages with this prefix are reserved for activity_audit; it is not delivered.")));
}

/*
 * A commit: deliver the events of the transaction and its committed
 * subtransactions, merged in WAL order.  Events the stream already held at
 * start (a restart re-reads WAL) are skipped, by commit LSN and position.
 */
static void
deliver_commit(TransactionId top, TransactionId *subxacts, int nsubxacts,
			   XLogRecPtr commit_lsn, TimestampTz committed_at)
{
	AATxnCursor *parts = palloc(sizeof(AATxnCursor) * (nsubxacts + 1));
	int			nparts = 0;
	int			i;
	int			index = 0;
	bool		first = true;
	AATxn	   *txn;

	if ((txn = find_txn(top)) != NULL)
		cursor_start(&parts[nparts++], txn);
	for (i = 0; i < nsubxacts; i++)
		if ((txn = find_txn(subxacts[i])) != NULL)
			cursor_start(&parts[nparts++], txn);

	for (;;)
	{
		int			best = -1;
		AAEvent    *ev;

		for (i = 0; i < nparts; i++)
		{
			if (parts[i].cur == NULL)
				continue;
			if (best < 0 || parts[i].cur->lsn < parts[best].cur->lsn)
				best = i;
		}
		if (best < 0)
			break;
		ev = parts[best].cur;
		if (!event_txid_matches(ev, top))
		{
			reject_forged(ev->lsn, "It is signed, but for another transaction.");
			cursor_next(&parts[best]);
			continue;
		}
		index++;
		if (!(commit_lsn < start_pos.commit_lsn ||
			  (commit_lsn == start_pos.commit_lsn && index <= start_pos.events_at_lsn)))
		{
			deliver_event(ev, commit_lsn, committed_at, first);
			first = false;
		}
		cursor_next(&parts[best]);
	}
	for (i = 0; i < nparts; i++)
	{
		cursor_end(&parts[i]);
		drop_txn(parts[i].txn);
	}
	pfree(parts);
}

/* An abort: drop the events of the (sub)transaction and its children. */
static void
drop_aborted(TransactionId xid, TransactionId *subxacts, int nsubxacts)
{
	AATxn	   *txn;
	int			i;

	if ((txn = find_txn(xid)) != NULL)
		drop_txn(txn);
	for (i = 0; i < nsubxacts; i++)
		if ((txn = find_txn(subxacts[i])) != NULL)
			drop_txn(txn);
}

/*
 * A running-xacts record: transactions older than the oldest running one
 * that still have buffers ended without a commit or abort record (a crash):
 * they never committed, so their events go.
 */
static void
drop_vanished(TransactionId oldest_running)
{
	HASH_SEQ_STATUS status;
	AATxn	   *txn;

	hash_seq_init(&status, txns);
	while ((txn = hash_seq_search(&status)) != NULL)
	{
		if (TransactionIdPrecedes(txn->xid, oldest_running))
			drop_txn(txn);
	}
}

/* Look at one WAL record. */
static void
process_record(XLogReaderState *reader)
{
	uint8		rmid = XLogRecGetRmid(reader);
	uint8		info = XLogRecGetInfo(reader) & ~XLR_INFO_MASK;

	if (rmid == RM_LOGICALMSG_ID && info == XLOG_LOGICAL_MESSAGE)
	{
		xl_logical_message *msg = (xl_logical_message *) XLogRecGetData(reader);
		size_t		body_len;
		uint64		event_txid;

		if (msg->prefix_size != sizeof(AA_MESSAGE_PREFIX) ||
			memcmp(msg->message, AA_MESSAGE_PREFIX, sizeof(AA_MESSAGE_PREFIX)) != 0)
			return;
		/* the trigger writes only transactional, signed messages */
		if (!msg->transactional ||
			!aa_verify_event(msg->message + msg->prefix_size, msg->message_size,
							 &body_len, &event_txid))
		{
			reject_forged(reader->ReadRecPtr, msg->transactional ?
						  "It is not signed with this server's event key." :
						  "It is not transactional.");
			return;
		}
		buffer_message(XLogRecGetXid(reader), reader->ReadRecPtr, event_txid,
					   msg->message + msg->prefix_size, body_len);
	}
	else if (rmid == RM_XACT_ID)
	{
		uint8		op = info & XLOG_XACT_OPMASK;

		if (op == XLOG_XACT_COMMIT || op == XLOG_XACT_COMMIT_PREPARED)
		{
			xl_xact_parsed_commit parsed;

			ParseCommitRecord(XLogRecGetInfo(reader),
							  (xl_xact_commit *) XLogRecGetData(reader), &parsed);
			deliver_commit(op == XLOG_XACT_COMMIT_PREPARED ?
						   parsed.twophase_xid : XLogRecGetXid(reader),
						   parsed.subxacts, parsed.nsubxacts,
						   reader->ReadRecPtr, parsed.xact_time);
		}
		else if (op == XLOG_XACT_ABORT || op == XLOG_XACT_ABORT_PREPARED)
		{
			xl_xact_parsed_abort parsed;

			ParseAbortRecord(XLogRecGetInfo(reader),
							 (xl_xact_abort *) XLogRecGetData(reader), &parsed);
			drop_aborted(op == XLOG_XACT_ABORT_PREPARED ?
						 parsed.twophase_xid : XLogRecGetXid(reader),
						 parsed.subxacts, parsed.nsubxacts);
		}
	}
	else if (rmid == RM_STANDBY_ID && info == XLOG_RUNNING_XACTS)
	{
		xl_running_xacts *running = (xl_running_xacts *) XLogRecGetData(reader);

		drop_vanished(running->oldestRunningXid);
	}
}

/* The oldest WAL position the writer still needs. */
static XLogRecPtr
needed_lsn(XLogRecPtr next_lsn)
{
	HASH_SEQ_STATUS status;
	AATxn	   *txn;
	XLogRecPtr	needed = next_lsn;

	hash_seq_init(&status, txns);
	while ((txn = hash_seq_search(&status)) != NULL)
		needed = Min(needed, txn->first_lsn);
	return needed;
}

/*
 * Create the writer's physical slot, or take it over after a restart; its
 * restart_lsn is where reading resumes.
 */
static XLogRecPtr
acquire_slot(void)
{
	XLogRecPtr	restart;

	if (SearchNamedReplicationSlot(AA_SLOT_NAME, true) == NULL)
	{
		ReplicationSlotCreate(AA_SLOT_NAME, false, RS_PERSISTENT, false);
		restart = GetFlushRecPtr(NULL);
		SpinLockAcquire(&MyReplicationSlot->mutex);
		MyReplicationSlot->data.restart_lsn = restart;
		SpinLockRelease(&MyReplicationSlot->mutex);
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		ReplicationSlotsComputeRequiredLSN();
		ereport(LOG,
				(errmsg("activity_audit writer created replication slot \"%s\" at %X/%X",
						AA_SLOT_NAME, LSN_FORMAT_ARGS(restart))));
		return restart;
	}
	ReplicationSlotAcquire(AA_SLOT_NAME, false);
	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	return restart;
}

/* Move the slot forward, keeping the WAL from 'needed' on. */
static void
advance_slot(XLogRecPtr needed)
{
	bool		changed = false;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	if (needed > MyReplicationSlot->data.restart_lsn)
	{
		MyReplicationSlot->data.restart_lsn = needed;
		changed = true;
	}
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (changed)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		ReplicationSlotsComputeRequiredLSN();
	}
}

/*
 * Make what was appended durable, then publish the position: flush()
 * returns once delivered_lsn passes the caller's WAL position.
 */
static void
checkpoint_delivery(XLogRecPtr next_lsn, TimestampTz *last_slot_save)
{
	TimestampTz now = GetCurrentTimestamp();

	if (aa_sink_file_enabled && !stream_open)
		open_stream();
	RETRY_FILE_SINK((err_ = NULL, aa_stream_sync(&err_)));

	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->read_lsn = next_lsn;
	writer_shared->delivered_lsn = next_lsn;
	writer_shared->events_delivered = events_delivered;
	writer_shared->bytes_written = aa_stream_bytes_written();
	writer_shared->pending_xacts = hash_get_num_entries(txns);
	writer_shared->forged_rejected = forged_rejected;
	writer_shared->spilled_bytes = spilled_bytes;
	strlcpy(writer_shared->current_file,
			aa_stream_current_file() ? aa_stream_current_file() : "",
			sizeof(writer_shared->current_file));
	SpinLockRelease(&writer_shared->mutex);

	/* saving the slot fsyncs: once a second is plenty */
	if (TimestampDifferenceExceeds(*last_slot_save, now, 1000))
	{
		advance_slot(needed_lsn(next_lsn));
		*last_slot_save = now;
	}
}

/*
 * Start with an empty spill directory: whatever an earlier run spilled is
 * read again from the WAL.
 */
static void
prepare_spill_dir(void)
{
	DIR		   *dir;
	struct dirent *de;

	(void) MakePGDirectory(AA_STATE_DIR);
	(void) MakePGDirectory(AA_STATE_DIR "/spill");
	dir = AllocateDir(AA_STATE_DIR "/spill");
	while ((de = ReadDir(dir, AA_STATE_DIR "/spill")) != NULL)
	{
		char		path[MAXPGPATH];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), AA_STATE_DIR "/spill/%s", de->d_name);
		if (unlink(path) != 0)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(dir);
}

/* Clear the shared pid when the worker exits. */
static void
writer_exit(int code, Datum arg)
{
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->pid = 0;
	writer_shared->latch = NULL;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * Worker entry point: set up, then read WAL for ever, delivering commits as
 * they come and sleeping at the end of the WAL until woken or timed out.
 */
void
aa_writer_main(Datum main_arg)
{
	XLogReaderState *reader;
	ReadLocalXLogPageNoWaitPrivate *private;
	XLogRecPtr	next_lsn;
	TimestampTz last_slot_save = 0;
	MemoryContext record_cxt;
	int			since_sync = 0;
	HASHCTL		ctl;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	before_shmem_exit(writer_exit, (Datum) 0);
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->pid = MyProcPid;
	writer_shared->latch = MyLatch;
	SpinLockRelease(&writer_shared->mutex);

	txn_cxt = AllocSetContextCreate(TopMemoryContext, "activity_audit pending events",
									ALLOCSET_DEFAULT_SIZES);
	record_cxt = AllocSetContextCreate(TopMemoryContext, "activity_audit record",
									   ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(AATxn);
	ctl.hcxt = TopMemoryContext;
	txns = hash_create("activity_audit pending transactions", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	prepare_spill_dir();
	open_stream();
	events_delivered = 0;

	next_lsn = acquire_slot();
	ereport(LOG,
			(errmsg("activity_audit writer started at %X/%X, stream at seq " UINT64_FORMAT,
					LSN_FORMAT_ARGS(next_lsn), start_pos.seq)));

	private = palloc0(sizeof(ReadLocalXLogPageNoWaitPrivate));
	reader = XLogReaderAllocate(wal_segment_size, NULL,
								XL_ROUTINE(.page_read = &read_local_xlog_page_no_wait,
										   .segment_open = &wal_segment_open,
										   .segment_close = &wal_segment_close),
								private);
	if (reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));

	/* the slot's position may be inside a record: find the next one */
	for (;;)
	{
		XLogRecPtr	first = XLogFindNextRecord(reader, next_lsn);

		if (!XLogRecPtrIsInvalid(first))
		{
			next_lsn = first;
			break;
		}
		private->end_of_wal = false;
		writer_sleep(AA_IDLE_MS);
	}
	XLogBeginRead(reader, next_lsn);

	for (;;)
	{
		XLogRecord *record;
		char	   *errormsg = NULL;
		MemoryContext old;

		handle_interrupts();

		/*
		 * The reader allocates oversized records in the current context and
		 * frees them itself at the next read: not in record_cxt.
		 */
		record = XLogReadRecord(reader, &errormsg);
		if (record == NULL)
		{
			if (!private->end_of_wal)
				ereport(WARNING,
						(errmsg("activity_audit writer could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(next_lsn),
								errormsg ? errormsg : "unknown error")));
			checkpoint_delivery(next_lsn, &last_slot_save);
			since_sync = 0;
			private->end_of_wal = false;
			writer_sleep(AA_IDLE_MS);
			XLogBeginRead(reader, next_lsn);
			continue;
		}
		old = MemoryContextSwitchTo(record_cxt);
		process_record(reader);
		MemoryContextSwitchTo(old);
		MemoryContextReset(record_cxt);
		next_lsn = reader->EndRecPtr;

		if (++since_sync >= 10000)
		{
			checkpoint_delivery(next_lsn, &last_slot_save);
			since_sync = 0;
		}
	}
}

/*
 * The WAL position a caller's earlier commits are certainly before.  The
 * insert position just past a page header equals the end of the record
 * before that header, as the reader reports it.
 */
static XLogRecPtr
flush_target(void)
{
	XLogRecPtr	target = GetXLogInsertRecPtr();

	if (XLogSegmentOffset(target, wal_segment_size) == SizeOfXLogLongPHD)
		target -= SizeOfXLogLongPHD;
	else if (target % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		target -= SizeOfXLogShortPHD;
	return target;
}

/*
 * activity_audit.flush(timeout): wait until every event committed before
 * the call is delivered.  The WAL is flushed first, so asynchronous commits
 * are covered too: up to the end of the last record, never to the insert
 * position just past a page header, which XLogFlush() cannot reach while
 * nothing has been written on that page ("xlog flush request ... is not
 * satisfied").
 */
Datum
activity_audit_flush(PG_FUNCTION_ARGS)
{
	Interval   *timeout = PG_GETARG_INTERVAL_P(0);
	TimestampTz deadline;
	XLogRecPtr	target;

	aa_require_preload();
	deadline = GetCurrentTimestamp() +
		(TimestampTz) (timeout->time + (int64) timeout->day * USECS_PER_DAY +
					   (int64) timeout->month * DAYS_PER_MONTH * USECS_PER_DAY);
	target = flush_target();
	XLogFlush(target);

	for (;;)
	{
		XLogRecPtr	delivered;
		Latch	   *latch;

		SpinLockAcquire(&writer_shared->mutex);
		delivered = writer_shared->delivered_lsn;
		latch = writer_shared->latch;
		SpinLockRelease(&writer_shared->mutex);
		if (delivered >= target)
			PG_RETURN_BOOL(true);
		if (GetCurrentTimestamp() >= deadline)
			PG_RETURN_BOOL(false);
		if (latch)
			SetLatch(latch);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* activity_audit.writer_status(): the writer's health and lag. */
Datum
activity_audit_writer_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[11];
	bool		nulls[11];
	AAWriterShared snap;
	XLogRecPtr	end;

	aa_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&writer_shared->mutex);
	memcpy(&snap, writer_shared, sizeof(snap));
	SpinLockRelease(&writer_shared->mutex);
	end = GetFlushRecPtr(NULL);

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(snap.pid);
	nulls[0] = (snap.pid == 0);
	values[1] = LSNGetDatum(snap.read_lsn);
	values[2] = LSNGetDatum(snap.delivered_lsn);
	values[3] = Int64GetDatum(end > snap.delivered_lsn ? (int64) (end - snap.delivered_lsn) : 0);
	values[4] = Int64GetDatum((int64) snap.events_delivered);
	values[5] = Int64GetDatum((int64) snap.bytes_written);
	values[6] = CStringGetTextDatum(snap.current_file);
	nulls[6] = (snap.current_file[0] == '\0');
	values[7] = Int32GetDatum(snap.pending_xacts);
	values[8] = Int64GetDatum((int64) snap.spilled_bytes);
	values[9] = Int64GetDatum((int64) snap.forged_rejected);
	values[10] = CStringGetTextDatum(snap.last_error);
	nulls[10] = (snap.last_error[0] == '\0');

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

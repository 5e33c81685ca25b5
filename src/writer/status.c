/*-------------------------------------------------------------------------
 *
 * status.c
 *		The writer's shared status and the SQL functions that read it:
 *		flush() and writer_status().
 *
 * The worker publishes its position, the stream's head and the oldest open
 * transaction with events after each durable delivery, and its last error
 * when something fails; backends read a consistent copy under the
 * spinlock.  flush() waits on that position, waking the worker's latch.
 * An error is kept until delivery gets past where it happened, except a
 * lost stretch of WAL, which stays until another error replaces it.
 *
 * This file must not deliver anything; it only shows what the worker did.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "activity_audit.h"
#include "writer/writer.h"

/* writer_status()'s columns, and those of release 0.2's definition */
#define AA_STATUS_COLUMNS		17
#define AA_STATUS_COLUMNS_0_2	11

PG_FUNCTION_INFO_V1(activity_audit_flush);
PG_FUNCTION_INFO_V1(activity_audit_writer_status);

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
	bool		has_head;		/* the file sink's stream has a last event */
	uint64		last_seq;		/* its seq and hash */
	char		last_hash[65];
	bool		has_oldest;		/* an open transaction has events */
	uint64		oldest_txid;	/* the oldest one (first event in the WAL) */
	TimestampTz oldest_since;	/* its prepare, else its first event; 0: unknown */
	char		oldest_gid[GIDSIZE];	/* prepared: its name, else "" */
	bool		retained_warned;	/* past audit.retained_warning, said so */
	char		last_error[512];
	bool		error_clears;	/* delivery past error_until clears it */
	XLogRecPtr	error_until;
	XLogRecPtr	failed_lsn;		/* the record of the last worker ERROR */
	int			failed_attempts;	/* worker ERRORs in a row before it */
} AAWriterShared;

static AAWriterShared *writer_shared = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
/* Ask for the shared status. */
static void
writer_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AAWriterShared)));
}
#endif

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

/* Ask for the shared status at preload (see aa_register_writer). */
void
aa_status_request_shmem(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = writer_shmem_request;
#else
	/* before 15, requests are made directly while preloading */
	RequestAddinShmemSpace(MAXALIGN(sizeof(AAWriterShared)));
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = writer_shmem_startup;
}

/* Publish the running worker's pid and latch (NULL: it exits). */
void
aa_status_set_worker(pid_t pid, Latch *latch)
{
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->pid = pid;
	writer_shared->latch = latch;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * Record (or clear, with NULL) the last error, for writer_status().  It
 * lives in shared memory and so outlives the worker: a worker that exits
 * while it reports an error (a SIGTERM during a sink's retries) leaves it
 * to the next one, which may never meet the problem again.  So the error
 * clears by itself once delivery gets past what was delivered when it
 * happened (aa_status_publish).
 */
void
aa_status_set_error(const char *msg)
{
	SpinLockAcquire(&writer_shared->mutex);
	strlcpy(writer_shared->last_error, msg ? msg : "",
			sizeof(writer_shared->last_error));
	writer_shared->error_clears = (msg != NULL);
	writer_shared->error_until = writer_shared->delivered_lsn;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * Record what does not end with later deliveries: WAL that was lost (gap.c).
 * It stays in writer_status() until another error replaces it.
 */
void
aa_status_set_lasting_error(const char *msg)
{
	SpinLockAcquire(&writer_shared->mutex);
	strlcpy(writer_shared->last_error, msg, sizeof(writer_shared->last_error));
	writer_shared->error_clears = false;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * Whether the worker has said that its slot keeps more WAL than
 * audit.retained_warning (retention.c); in shared memory, so that a
 * restarted worker does not say it again.
 */
bool
aa_status_retained_warned(void)
{
	bool		warned;

	SpinLockAcquire(&writer_shared->mutex);
	warned = writer_shared->retained_warned;
	SpinLockRelease(&writer_shared->mutex);
	return warned;
}

/* Note that it said so (or, false, that the WAL kept is below it again). */
void
aa_status_set_retained_warned(bool warned)
{
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->retained_warned = warned;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * The worker restarts because of the last error: the error lives in shared
 * memory, so it outlives the worker, and nobody is left to clear it when
 * the problem is over.  Delivery going on past where it stands now clears
 * it (aa_status_publish).
 */
void
aa_status_error_until_progress(void)
{
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->error_clears = true;
	writer_shared->error_until = writer_shared->delivered_lsn;
	SpinLockRelease(&writer_shared->mutex);
}

/*
 * Record an ERROR that made the worker give up at the WAL record at `lsn`
 * (invalid: before the first), for writer_status(), and count it: returns
 * how many attempts in a row failed, so that the pause before the next can
 * grow (worker_error.c).  Both survive the worker's restart; delivery past
 * the record clears them (aa_status_publish).
 */
int
aa_status_record_failure(XLogRecPtr lsn, const char *msg)
{
	int			attempts;

	SpinLockAcquire(&writer_shared->mutex);
	strlcpy(writer_shared->last_error, msg, sizeof(writer_shared->last_error));
	writer_shared->error_clears = true;
	writer_shared->error_until = XLogRecPtrIsInvalid(lsn) ?
		writer_shared->delivered_lsn : lsn;
	writer_shared->failed_lsn = writer_shared->error_until;
	attempts = ++writer_shared->failed_attempts;
	SpinLockRelease(&writer_shared->mutex);
	return attempts;
}

/*
 * Publish the position and counters after a durable delivery: flush()
 * returns once delivered_lsn passes the caller's WAL position.  An error
 * that made an earlier worker restart is over once delivery has passed it.
 * head: the file sink's durable stream position (NULL: the file sink is
 * off); oldest: the open transaction with events whose first event is
 * oldest (NULL: none), which holds the WAL.
 */
void
aa_status_publish(XLogRecPtr next_lsn, uint64 events_delivered,
				  uint64 bytes_written, int pending_xacts,
				  uint64 forged_rejected, uint64 spilled_bytes,
				  const char *current_file, const AAStreamPos *head,
				  const AATxn *oldest)
{
	SpinLockAcquire(&writer_shared->mutex);
	writer_shared->has_head = head != NULL && head->seq > 0;
	if (writer_shared->has_head)
	{
		writer_shared->last_seq = head->seq;
		memcpy(writer_shared->last_hash, head->hash, sizeof(writer_shared->last_hash));
	}
	writer_shared->has_oldest = oldest != NULL;
	if (oldest)
	{
		writer_shared->oldest_txid = oldest->txid;
		writer_shared->oldest_since = oldest->gid ? oldest->prepared_at : oldest->first_at;
		strlcpy(writer_shared->oldest_gid, oldest->gid ? oldest->gid : "",
				sizeof(writer_shared->oldest_gid));
	}
	writer_shared->read_lsn = next_lsn;
	writer_shared->delivered_lsn = next_lsn;
	writer_shared->events_delivered = events_delivered;
	writer_shared->bytes_written = bytes_written;
	writer_shared->pending_xacts = pending_xacts;
	writer_shared->forged_rejected = forged_rejected;
	writer_shared->spilled_bytes = spilled_bytes;
	strlcpy(writer_shared->current_file, current_file ? current_file : "",
			sizeof(writer_shared->current_file));
	if (writer_shared->error_clears && next_lsn > writer_shared->error_until)
	{
		writer_shared->last_error[0] = '\0';
		writer_shared->error_clears = false;
	}
	if (next_lsn > writer_shared->failed_lsn)
		writer_shared->failed_attempts = 0;
	SpinLockRelease(&writer_shared->mutex);
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
 * are covered too.
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
	/* not the insert position itself: past a page header it cannot be flushed */
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

/*
 * activity_audit.writer_status(): the writer's health and lag, what holds
 * the WAL and the stream's head.  Release 0.2's definition has only the
 * first 11 columns; it is served too, so that the function works between
 * the library's upgrade and ALTER EXTENSION ... UPDATE.
 */
Datum
activity_audit_writer_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[AA_STATUS_COLUMNS];
	bool		nulls[AA_STATUS_COLUMNS];
	AAWriterShared snap;
	XLogRecPtr	end;
	int64		retained;

	aa_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != AA_STATUS_COLUMNS && tupdesc->natts != AA_STATUS_COLUMNS_0_2)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("activity_audit.writer_status() is defined with %d columns, which this library does not know",
						tupdesc->natts),
				 errhint("Run ALTER EXTENSION activity_audit UPDATE.")));

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
	/* release 0.3 */
	values[11] = Int64GetDatum((int64) snap.last_seq);
	values[12] = CStringGetTextDatum(snap.last_hash);
	nulls[11] = nulls[12] = !snap.has_head;
	retained = aa_retained_bytes();
	values[13] = Int64GetDatum(retained);
	nulls[13] = (retained < 0);
	values[14] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap.oldest_txid));
	values[15] = CStringGetTextDatum(snap.oldest_gid);
	values[16] = IntervalPGetDatum(DatumGetIntervalP(
												 DirectFunctionCall2(timestamp_mi,
																	 TimestampTzGetDatum(GetCurrentTimestamp()),
																	 TimestampTzGetDatum(snap.oldest_since))));
	nulls[14] = !snap.has_oldest;
	nulls[15] = !snap.has_oldest || snap.oldest_gid[0] == '\0';
	nulls[16] = !snap.has_oldest || snap.oldest_since == 0;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The writer: a background worker that follows the WAL and delivers
 *		committed audit events, in commit order and exactly once, to the
 *		sinks.
 *
 * Exactly once: the stream's files are the truth about what was delivered
 * (stream.c recovers seq, hash and the last commit from them), and a
 * physical replication slot of the writer's own keeps the WAL back to the
 * oldest message not yet delivered.  After any restart the writer reads
 * from the slot's position again and skips what the files already hold.
 *
 * This file owns the worker's life cycle: registration, signals and the
 * reading loop.  Where reading starts and the slot are slot.c's (WAL that
 * is needed but gone is recorded by gap.c, never skipped quietly), what a
 * record means is decode.c's, the buffers are txnbuf.c's, the sinks
 * deliver.c's, the shared status status.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "activity_audit.h"
#include "writer/writer.h"

/* How long the writer sleeps at the end of the WAL, at most. */
#define AA_IDLE_MS			100

PGDLLEXPORT void aa_writer_main(Datum main_arg);

/*
 * Where an ERROR in the worker goes (worker_error.c), and the WAL record
 * being processed, which it concerns.
 */
static sigjmp_buf error_jmp;
static XLogRecPtr current_record = InvalidXLogRecPtr;

/*
 * Register the shared memory and the worker.  Only at preload: the worker
 * is one per cluster and is restarted by the postmaster if it dies.
 */
void
aa_register_writer(void)
{
	BackgroundWorker worker;

	aa_status_request_shmem();

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

/*
 * Reload the configuration on SIGHUP; leave on SIGTERM.  With status 1,
 * as worker_spi does, so that the postmaster starts the writer again: a
 * SIGTERM comes not only at shutdown (when nothing is restarted) but also
 * from an operator's kill and from a checkpoint that invalidates the
 * writer's slot (max_slot_wal_keep_size), and status 0 would unregister
 * the writer for good, leaving the stream silently stopped.
 */
static void
handle_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		aa_deliver_reloaded();
	}
	if (ShutdownRequestPending)
	{
		/* the last digest names what is durable now (digest_log.c) */
		aa_digest_tick(true);
		proc_exit(1);
	}
}

/* Sleep on the latch, waking for signals, flush() requests or timeout. */
void
aa_writer_sleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	handle_interrupts();
}

/*
 * Make what was appended durable, then publish the position: flush()
 * returns once delivered_lsn passes the caller's WAL position.
 */
static void
checkpoint_delivery(XLogRecPtr next_lsn, TimestampTz *last_slot_save)
{
	TimestampTz now = GetCurrentTimestamp();
	AATxn	   *oldest;
	AAStreamPos head;
	bool		has_head;

	aa_deliver_sync();
	oldest = aa_txns_oldest();
	has_head = aa_deliver_head(&head);
	aa_status_publish(next_lsn, aa_deliver_count(), aa_stream_bytes_written(),
					  aa_txns_count(), aa_decode_forged_count(),
					  aa_txns_spilled_bytes(), aa_stream_current_file(),
					  has_head ? &head : NULL, oldest);
	aa_digest_tick(false);

	/* saving the slot fsyncs: once a second is plenty */
	if (TimestampDifferenceExceeds(*last_slot_save, now, 1000))
	{
		XLogRecPtr	needed = oldest ? Min(next_lsn, oldest->first_lsn) : next_lsn;

		aa_slot_advance(Min(needed, aa_counters_needed_lsn(next_lsn)));
		aa_retention_check(oldest);
		*last_slot_save = now;
	}
}

/* Clear the shared pid when the worker exits. */
static void
writer_exit(int code, Datum arg)
{
	aa_status_set_worker(0, NULL);
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
	AAStreamPos start;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	before_shmem_exit(writer_exit, (Datum) 0);
	aa_status_set_worker(MyProcPid, MyLatch);

	/*
	 * An ERROR from here on is reported, and retried after a pause by a new
	 * worker, rather than ending this one silently (worker_error.c).  The
	 * handler never returns here.
	 */
	if (sigsetjmp(error_jmp, 1) != 0)
		aa_writer_failed(current_record);
	PG_exception_stack = &error_jmp;

	aa_txns_init();
	aa_counters_init();
	aa_format1_init();
	record_cxt = AllocSetContextCreate(TopMemoryContext, "activity_audit record",
									   ALLOCSET_DEFAULT_SIZES);
	aa_txns_remove_spill_files();
	aa_deliver_open();
	aa_deliver_start_position(&start);

	next_lsn = aa_slot_start(&start);
	ereport(LOG,
			(errmsg("activity_audit writer started at %X/%X, stream at seq " UINT64_FORMAT,
					LSN_FORMAT_ARGS(next_lsn), aa_deliver_start_seq())));

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
		aa_writer_sleep(AA_IDLE_MS);
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
			aa_writer_sleep(AA_IDLE_MS);
			XLogBeginRead(reader, next_lsn);
			continue;
		}
		current_record = reader->ReadRecPtr;
		old = MemoryContextSwitchTo(record_cxt);
		aa_decode_record(reader);
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

/*-------------------------------------------------------------------------
 *
 * worker_error.c
 *		What the writer does with an ERROR while it reads and delivers the
 *		WAL: report it, pause, and restart to try again.
 *
 * A record the writer cannot process (an event the stream cannot write,
 * WAL that cannot be read, also when a commit reads its spilled events
 * back) used to kill the worker; the postmaster started it again a second
 * later, it read the same WAL and died again, for ever, with nothing in
 * writer_status().
 *
 * worker.c catches every ERROR at the top of the worker, as PostgreSQL's
 * own auxiliary processes do, and hands it here.  It is logged as one
 * WARNING per attempt and kept in writer_status().last_error, naming the
 * WAL record it concerns (and, when the error has one, its context, such
 * as the commit whose spilled events were being read back); the writer
 * then pauses, longer after each failed attempt in a row (as deliver.c
 * does for sink errors), and exits with status 1.  The postmaster starts
 * it again, and it recovers exactly as after a crash: the position from
 * the stream's files, the WAL from its slot, so nothing is delivered twice
 * or lost.  The error and the count of attempts live in shared memory
 * (status.c), so they survive the restart, until delivery gets past the
 * record.  A cut of the stream still pending after a failed fsync
 * (stream_cut.c) is done before the worker exits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "writer/writer.h"

/* Pause after the first failed attempt, doubled for each next one. */
#define AA_ERROR_RETRY_MIN_MS	1000
#define AA_ERROR_RETRY_MAX_MS	30000

/* The pause after failed attempt number `attempt` (1, 2, ...). */
static long
retry_pause(int attempt)
{
	long		pause = AA_ERROR_RETRY_MIN_MS;

	while (--attempt > 0 && pause < AA_ERROR_RETRY_MAX_MS)
		pause *= 2;
	return Min(pause, AA_ERROR_RETRY_MAX_MS);
}

/*
 * Sleep for all of `ms`: flush() wakes the writer's latch every few
 * milliseconds while it waits, which must not cut the pause short.
 * Signals are still handled (a shutdown does not wait for the pause).
 */
static void
pause_for(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   end);

		if (left <= 0)
			break;
		aa_writer_sleep(left);
	}
}

/*
 * Called by the worker's error handler (worker.c) with the LSN of the WAL
 * record being processed (invalid before the first): report the error,
 * pause, exit(1) to be restarted.  Never returns.
 */
void
aa_writer_failed(XLogRecPtr lsn)
{
	ErrorData  *edata;
	char	   *msg;
	int			attempt;
	long		pause;

	/* an ERROR from here on ends the worker (FATAL): no second round */
	PG_exception_stack = NULL;
	/* the error context callbacks of what failed apply no more */
	error_context_stack = NULL;

	/* clean up what an ERROR may leave behind, as auxiliary processes do */
	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	FlushErrorState();
	LWLockReleaseAll();
	ConditionVariableCancelSleep();
	pgstat_report_wait_end();
	RESUME_INTERRUPTS();

	if (XLogRecPtrIsInvalid(lsn))
		msg = psprintf("%s (%s%sbefore reading the WAL)", edata->message,
					   edata->context ? edata->context : "",
					   edata->context ? "; " : "");
	else
		msg = psprintf("%s (%s%sWAL record at %X/%X)", edata->message,
					   edata->context ? edata->context : "",
					   edata->context ? "; " : "", LSN_FORMAT_ARGS(lsn));
	attempt = aa_status_record_failure(lsn, msg);
	pause = retry_pause(attempt);
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("activity_audit writer cannot deliver: %s", msg),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 errhint("The writer tries again in %ld s (attempt %d), reading the WAL again from its slot; nothing is lost meanwhile.",
					 pause / 1000, attempt)));
	pause_for(pause);

	/* a new worker would trust what a failed fsync may have lost */
	while (aa_cut_pending())
	{
		char	   *err = NULL;

		if (aa_cut_retry(-1, &err))
		{
			ereport(LOG, (errmsg_internal("%s", err)));
			break;
		}
		aa_status_set_error(err);
		pause_for(pause);
	}
	proc_exit(1);
}

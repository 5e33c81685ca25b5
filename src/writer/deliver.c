/*-------------------------------------------------------------------------
 *
 * deliver.c
 *		The writer's sinks: each committed event goes to the file sink's
 *		stream (stream.c) and/or the server log, as audit.sink says.
 *
 * A sink that cannot be written is retried with a growing pause, reported
 * once in writer_status() and the log, and loses nothing: the operation is
 * repeated until it succeeds, or until a reload takes the file sink out of
 * audit.sink, so that one failing sink does not hold up the others.  When
 * the stream can only go on after a restart (a failed fsync, once the
 * file is cut back to its last successful fsync; a removed file), the
 * worker restarts and reads the WAL again from its slot.
 *
 * This file must not read WAL nor decide which events are delivered.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/elog.h"

#include "guc.h"
#include "writer/writer.h"

/* Retry back-off bounds after a sink error. */
#define AA_RETRY_MIN_MS		100
#define AA_RETRY_MAX_MS		10000

static AAStreamPos start_pos;	/* what the stream held when opened */
static bool stream_open = false;	/* the file sink's stream is open */
static uint64 events_delivered = 0;

/*
 * Report a sink failure once in writer_status() and the log.  When the
 * stream can only go on after a restart (a failed fsync: the file was cut
 * back to its last successful fsync, and what followed must be written
 * again), the worker exits after a pause and the postmaster restarts it:
 * it then recovers the stream's end from the files and reads the WAL again
 * from its slot, which never moves past what was synced.  Otherwise
 * (including a cut that could not be made yet) the caller retries the same
 * operation.
 */
static void
sink_failed(const char *err, bool *reported, long *wait)
{
	if (!*reported)
		ereport(WARNING,
				(errmsg("activity_audit writer cannot deliver: %s", err),
				 errhint("Delivery resumes by itself once the sink is writable; WAL is kept meanwhile.")));
	*reported = true;
	aa_status_set_error(err);
	/* meanwhile the slot keeps all new WAL: say so past the limit */
	aa_retention_check(NULL);
	aa_writer_sleep(*wait);
	*wait = Min(*wait * 2, AA_RETRY_MAX_MS);
	if (stream_open && aa_stream_needs_reopen())
	{
		ereport(LOG,
				(errmsg("activity_audit writer restarts to recover the audit stream"),
				 errdetail_internal("%s", err)));
		aa_status_error_until_progress();
		proc_exit(1);
	}
}

/* Whether the file sink is on and its stream open (see handle_interrupts). */
static inline bool
file_sink_on(void)
{
	return (aa_sinks & AA_SINK_FILE) && stream_open;
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
	aa_status_set_error(NULL);
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
void
aa_deliver_open(void)
{
	char	   *err = NULL;
	long		wait = AA_RETRY_MIN_MS;
	bool		reported = false;

	while ((aa_sinks & AA_SINK_FILE) && !aa_stream_open(&err))
	{
		sink_failed(err, &reported, &wait);
		if (err)
			pfree(err);
		err = NULL;
	}
	if (aa_sinks & AA_SINK_FILE)
	{
		stream_open = true;
		aa_stream_position(&start_pos);
	}
	if (reported)
		sink_recovered();
}

/*
 * Whether the event at 'index' (1, 2, ...) of the commit at commit_lsn was
 * in the stream when it was opened: after a restart the WAL is read again
 * from the slot, and what the files already hold is skipped.
 */
bool
aa_deliver_already_done(XLogRecPtr commit_lsn, int index)
{
	return commit_lsn < start_pos.commit_lsn ||
		(commit_lsn == start_pos.commit_lsn && index <= start_pos.events_at_lsn);
}

/* committed_at of the last event appended to the file sink (0: none yet) */
static TimestampTz last_committed_at = 0;

/* Deliver one event to every configured sink. */
void
aa_deliver_event(const char *event, int len, XLogRecPtr commit_lsn,
				 TimestampTz committed_at, bool first_of_commit)
{
	if (aa_sinks & AA_SINK_FILE)
		last_committed_at = committed_at;
	if ((aa_sinks & AA_SINK_FILE) && !stream_open)
		aa_deliver_open();
	RETRY_FILE_SINK((err_ = NULL,
					 aa_stream_append(event, len, commit_lsn,
									  committed_at, first_of_commit, &err_)));
	if (aa_sinks & AA_SINK_LOG)
		ereport(LOG,
				(errmsg("AUDIT: %.*s", len, event),
				 errhidestmt(true), errhidecontext(true)));
	events_delivered++;
}

/* Make what was appended durable (see aa_stream_sync), retrying. */
void
aa_deliver_sync(void)
{
	if ((aa_sinks & AA_SINK_FILE) && !stream_open)
		aa_deliver_open();
	RETRY_FILE_SINK((err_ = NULL, aa_stream_sync(&err_)));
}

/*
 * After a reload: "file" removed from audit.sink closes the stream (see
 * aa_deliver_open for what happens when it comes back).  A stream that
 * must restart first (see sink_failed) restarts now, so that what it lost
 * is delivered again, to the sinks that are left, from the slot.
 */
void
aa_deliver_reloaded(void)
{
	if (!(aa_sinks & AA_SINK_FILE) && stream_open)
	{
		if (aa_stream_needs_reopen())
		{
			ereport(LOG,
					(errmsg("activity_audit writer restarts to recover the audit stream")));
			aa_status_error_until_progress();
			proc_exit(1);
		}
		aa_stream_close();
		stream_open = false;
	}
}

/*
 * The file sink's stream position now (its last durable event after
 * aa_deliver_sync), for writer_status(); false when the file sink is off.
 */
bool
aa_deliver_head(AAStreamPos *pos)
{
	if (!file_sink_on())
		return false;
	aa_stream_position(pos);
	return true;
}

/* The seq the stream had when it was opened, for the start message. */
uint64
aa_deliver_start_seq(void)
{
	return start_pos.seq;
}

/*
 * The whole position the stream had when it was opened (all zeros when the
 * file sink is off), for slot.c to find where reading must resume.
 */
void
aa_deliver_start_position(AAStreamPos *pos)
{
	*pos = start_pos;
}

/* Events delivered since the worker started, for writer_status(). */
uint64
aa_deliver_count(void)
{
	return events_delivered;
}

/*
 * The commit time of the stream's last appended event, for its digest
 * (digest_log.c); 0 before this worker appended one.
 */
TimestampTz
aa_deliver_last_committed_at(void)
{
	return last_committed_at;
}

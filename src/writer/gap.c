/*-------------------------------------------------------------------------
 *
 * gap.c
 *		WAL the writer needs but cannot read: how far back the WAL on this
 *		server still goes, and recording a loss so that it is never silent.
 *
 * A loss is reported three ways: a WARNING naming the LSN range and what
 * to do, writer_status().last_error, and a gap line in the stream (its
 * form is common/stream_format.h's, written by aa_gap_format()), which is
 * delivered like an event: a link of the hash chain with its own seq, and
 * "AUDIT: ..." in the server log when the log sink is on.  The line is
 * made durable before the caller moves the slot past the loss (slot.c).
 *
 * A gap line describes this server (its system identifier, timeline and
 * clock), unlike every other line of the stream: the loss happened here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#if PG_VERSION_NUM >= 150000
#include "access/xlogrecovery.h"
#endif
#include "storage/fd.h"
#include "utils/timestamp.h"

#include "common/json_out.h"
#include "common/stream_line.h"
#include "guc.h"
#include "writer/writer.h"

/* The end of the WAL on this server, and its timeline. */
static XLogRecPtr
wal_end(TimeLineID *tli)
{
	if (RecoveryInProgress())
		return GetXLogReplayRecPtr(tli);
#if PG_VERSION_NUM >= 150000
	return GetFlushRecPtr(tli);
#else
	*tli = ThisTimeLineID;		/* set by RecoveryInProgress() */
	return GetFlushRecPtr();
#endif
}

/* qsort comparator: segment numbers, highest first. */
static int
segno_desc(const void *a, const void *b)
{
	XLogSegNo	x = *(const XLogSegNo *) a;
	XLogSegNo	y = *(const XLogSegNo *) b;

	return x < y ? 1 : (x > y ? -1 : 0);
}

/*
 * The start of the oldest WAL segment from which the WAL runs without a
 * hole up to the segment being written: what a reader can still follow.
 * Segments removed since the server started (XLogGetLastRemovedSegno) and
 * those missing from pg_wal (removed by hand, or before a pg_resetwal)
 * both count; recycled segments named past the end do not.
 */
XLogRecPtr
aa_wal_oldest(void)
{
	TimeLineID	tli;
	XLogRecPtr	end = wal_end(&tli);
	XLogSegNo	last;
	XLogSegNo	oldest;
	XLogSegNo  *segs;
	int			nsegs = 0;
	int			cap = 64;
	int			i;
	DIR		   *dir;
	struct dirent *de;
	XLogRecPtr	result;

	XLByteToPrevSeg(end, last, wal_segment_size);
	segs = palloc(cap * sizeof(XLogSegNo));
	dir = AllocateDir(XLOGDIR);
	while ((de = ReadDir(dir, XLOGDIR)) != NULL)
	{
		TimeLineID	file_tli;
		XLogSegNo	segno;

		if (!IsXLogFileName(de->d_name))
			continue;
		XLogFromFileName(de->d_name, &file_tli, &segno, wal_segment_size);
		if (segno > last)
			continue;
		if (nsegs == cap)
		{
			cap *= 2;
			segs = repalloc(segs, cap * sizeof(XLogSegNo));
		}
		segs[nsegs++] = segno;
	}
	FreeDir(dir);

	/* walk down from the last segment while each one is there */
	qsort(segs, nsegs, sizeof(XLogSegNo), segno_desc);
	oldest = last;
	for (i = 0; i < nsegs; i++)
	{
		if (segs[i] == oldest - 1)
			oldest--;
		else if (segs[i] < oldest - 1)
			break;
	}
	pfree(segs);
	if (oldest <= XLogGetLastRemovedSegno())
		oldest = Min(XLogGetLastRemovedSegno() + 1, last);
	XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, result);
	return result;
}

/* Why the WAL is gone, and what to do, for the WARNING. */
static void
reason_text(const char *reason, const char **detail, const char **hint)
{
	if (strcmp(reason, "slot_invalidated") == 0)
	{
		*detail = "The writer's replication slot \"activity_audit\" was invalidated: the writer fell further behind than max_slot_wal_keep_size allows.";
		*hint = "Raise max_slot_wal_keep_size (or set it to -1), and find out why the writer fell behind: writer_status().last_error and lag_bytes.";
	}
	else if (strcmp(reason, "slot_missing") == 0)
	{
		*detail = "The writer's replication slot \"activity_audit\" was missing (a data directory restored without pg_replslot, or the slot dropped), and the WAL after the stream's last event is gone.";
		*hint = "Do not drop the slot \"activity_audit\"; restore a data directory together with its pg_replslot and pg_wal.";
	}
	else
	{
		*detail = "The WAL was removed although the writer's replication slot still needed it (pg_resetwal, or files removed from pg_wal).";
		*hint = "Never remove files from pg_wal by hand: the writer's slot keeps only what it still needs.";
	}
}

/*
 * Record that the WAL from lost_from up to lost_to (the oldest WAL there
 * is, where reading resumes) is gone: report it, and deliver a gap line
 * durably.  Like any delivery this waits, retrying, while the file sink
 * fails.
 */
void
aa_gap_record(XLogRecPtr lost_from, XLogRecPtr lost_to, const char *reason)
{
	AAGap		gap;
	char		text[AA_GAP_LINE_MAX];
	TimestampTz detected = GetCurrentTimestamp();
	TimeLineID	tli;
	int			len;
	char	   *what;
	const char *detail;
	const char *hint;

	memset(&gap, 0, sizeof(gap));
	aa_format_utc(detected, gap.detected);
	strlcpy(gap.reason, reason, sizeof(gap.reason));
	gap.system_identifier = GetSystemIdentifier();
	(void) wal_end(&tli);
	gap.timeline = tli;
	gap.txid_upper_bound = U64FromFullTransactionId(ReadNextFullTransactionId());
	gap.lost_from = lost_from;
	gap.lost_to = lost_to;
	len = aa_gap_format(&gap, text, sizeof(text));
	if (len < 0)
		elog(ERROR, "could not form the gap line for reason \"%s\"", reason);

	what = psprintf("WAL from %X/%X to %X/%X was lost (%s)",
					LSN_FORMAT_ARGS(lost_from), LSN_FORMAT_ARGS(lost_to), reason);
	reason_text(reason, &detail, &hint);
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("activity_audit writer lost WAL from %X/%X to %X/%X",
					LSN_FORMAT_ARGS(lost_from), LSN_FORMAT_ARGS(lost_to)),
			 errdetail("%s The events in it are missing from the audit stream, which records the loss as a gap line (\"event_type\":\"WAL_LOST\"); delivery goes on from %X/%X.",
					   detail, LSN_FORMAT_ARGS(lost_to)),
			 errhint("%s", hint)));
	aa_status_set_lasting_error(what);

	aa_deliver_event(text, len, lost_to, detected, true);
	aa_deliver_sync();

	/* a sink error while it was written replaced the message: set it again */
	if (aa_sinks & AA_SINK_FILE)
	{
		AAStreamPos pos;

		aa_stream_position(&pos);
		ereport(LOG,
				(errmsg("activity_audit writer recorded the lost WAL from %X/%X to %X/%X as seq " UINT64_FORMAT " of the audit stream",
						LSN_FORMAT_ARGS(lost_from), LSN_FORMAT_ARGS(lost_to), pos.seq)));
		aa_status_set_lasting_error(psprintf("%s: recorded in the audit stream as the gap line at seq " UINT64_FORMAT,
									 what, pos.seq));
	}
	else
		aa_status_set_lasting_error(psprintf("%s: logged as a gap line; the file sink is off", what));
	pfree(what);
}

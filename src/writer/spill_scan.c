/*-------------------------------------------------------------------------
 *
 * spill_scan.c
 *		Reading the spilled events of a commit back from the WAL.
 *
 * Past audit.writer_memory the writer drops the events of its largest
 * open transaction from memory and keeps only their range in the WAL and
 * their count (txnbuf.c).  At the commit, the spilled events of all its
 * parts (the transaction and its committed subtransactions) are read back
 * in one sequential pass of the WAL, from the smallest spilled range's
 * start to the largest one's end, with a WAL reader of their own: the
 * messages of one of the parts inside that part's range, recognized
 * exactly as the first read recognized them (aa_decode_message, and the
 * LSNs the first read rejected skipped).  They come out in WAL order, one
 * at a time, as one more source of the commit's merge (decode.c).
 *
 * The writer's slot keeps that WAL (it holds the oldest open
 * transaction's first event), and all of it was flushed and read before,
 * so the reader waits for nothing.  WAL that cannot be read, or a count
 * of events that differs from what was spilled, is an ERROR naming the
 * transaction and the range; the writer reports it and retries
 * (worker_error.c), and never delivers a commit with events missing or
 * twice.  Memory stays bounded: one decoded record at a time, and the
 * current event copied into one buffer reused for the next.
 *
 * This file must not deliver anything nor decide which messages are
 * events (decode.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "replication/message.h"
#include "utils/memutils.h"

#include "writer/writer.h"

/* One part of the commit with spilled events, and what was found of it. */
typedef struct SpillPart
{
	AATxn	   *txn;
	uint64		found;			/* its events read back so far */
	int			next_rejected;	/* first of txn->rejected not passed yet */
} SpillPart;

struct AASpillScan
{
	TransactionId top;			/* the committing transaction */
	SpillPart  *parts;			/* the parts with spilled events, by xid */
	int			nparts;
	XLogRecPtr	start;			/* the smallest spill_start */
	XLogRecPtr	end;			/* the largest spill_end */
	MemoryContext cxt;			/* the reader, its records and the event */
	XLogReaderState *reader;
	ReadLocalXLogPageNoWaitPrivate *private;
	AAEvent    *ev;				/* the current event */
	Size		ev_space;		/* its allocation */
	bool		at_end;			/* the event at "end" was returned */
	bool		done;
	ErrorContextCallback errcb;
};

/* qsort and bsearch comparator: parts by xid. */
static int
part_xid_cmp(const void *a, const void *b)
{
	TransactionId x = ((const SpillPart *) a)->txn->xid;
	TransactionId y = ((const SpillPart *) b)->txn->xid;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* The part of the commit with spilled events that xid wrote, or NULL. */
static SpillPart *
find_part(AASpillScan *scan, TransactionId xid)
{
	AATxn		key_txn;
	SpillPart	key;

	key_txn.xid = xid;
	key.txn = &key_txn;
	return bsearch(&key, scan->parts, scan->nparts, sizeof(SpillPart),
				   part_xid_cmp);
}

/*
 * How an error message names a part: its xid, and the committing
 * transaction's when it is a subtransaction.
 */
static char *
part_name(AASpillScan *scan, SpillPart *part)
{
	if (part->txn->xid == scan->top)
		return psprintf("transaction %u", scan->top);
	return psprintf("subtransaction %u of transaction %u",
					part->txn->xid, scan->top);
}

/* Error context of the WAL reads: which commit's spilled events. */
static void
scan_error_callback(void *arg)
{
	AASpillScan *scan = (AASpillScan *) arg;

	errcontext("reading back the spilled events of transaction %u from the WAL from %X/%X to %X/%X",
			   scan->top, LSN_FORMAT_ARGS(scan->start), LSN_FORMAT_ARGS(scan->end));
}

/*
 * The count of a part's events read back differs from the count spilled
 * (more: one more than spilled was found): delivering the commit would
 * lose or repeat events.  The writer retries from its slot; with more
 * memory it would not have to read them back.
 */
static void
count_mismatch(AASpillScan *scan, SpillPart *part, bool more)
{
	char	   *found;

	if (more)
		found = psprintf("more than the " UINT64_FORMAT, part->txn->nspilled);
	else
		found = psprintf(UINT64_FORMAT " of the " UINT64_FORMAT,
						 part->found, part->txn->nspilled);
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("activity_audit writer found %s spilled events of %s in the WAL from %X/%X to %X/%X",
					found, part_name(scan, part),
					LSN_FORMAT_ARGS(part->txn->spill_start),
					LSN_FORMAT_ARGS(part->txn->spill_end)),
			 errdetail("Events past audit.writer_memory are dropped from memory and read back from the WAL at the commit, where they must be found exactly as first read; the transaction is not delivered."),
			 errhint("Raising audit.writer_memory above the transaction's size lets the writer deliver it from memory when it tries again.")));
}

/*
 * Start reading back the spilled events of the commit of top, whose parts
 * (with events, spilled or not) are given.  At least one part must have
 * spilled events.  Everything the scan allocates lives in a memory
 * context of its own, freed by aa_spill_scan_end().
 */
AASpillScan *
aa_spill_scan_begin(TransactionId top, AATxn **parts, int nparts)
{
	MemoryContext cxt;
	MemoryContext old;
	AASpillScan *scan;
	int			i;

	cxt = AllocSetContextCreate(TopMemoryContext, "activity_audit spill re-read",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	scan = palloc0(sizeof(AASpillScan));
	scan->cxt = cxt;
	scan->top = top;
	scan->parts = palloc(sizeof(SpillPart) * nparts);
	scan->start = InvalidXLogRecPtr;
	scan->end = InvalidXLogRecPtr;
	for (i = 0; i < nparts; i++)
	{
		AATxn	   *txn = parts[i];
		SpillPart  *part;

		if (txn->nspilled == 0)
			continue;
		part = &scan->parts[scan->nparts++];
		part->txn = txn;
		part->found = 0;
		part->next_rejected = 0;
		if (XLogRecPtrIsInvalid(scan->start) || txn->spill_start < scan->start)
			scan->start = txn->spill_start;
		scan->end = Max(scan->end, txn->spill_end);
	}
	Assert(scan->nparts > 0);
	qsort(scan->parts, scan->nparts, sizeof(SpillPart), part_xid_cmp);

	scan->private = palloc0(sizeof(ReadLocalXLogPageNoWaitPrivate));
	scan->reader = XLogReaderAllocate(wal_segment_size, NULL,
									  XL_ROUTINE(.page_read = &read_local_xlog_page_no_wait,
												 .segment_open = &wal_segment_open,
												 .segment_close = &wal_segment_close),
									  scan->private);
	if (scan->reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	/* the start is the LSN of an event: a record boundary */
	XLogBeginRead(scan->reader, scan->start);
	scan->errcb.callback = scan_error_callback;
	scan->errcb.arg = scan;
	MemoryContextSwitchTo(old);
	return scan;
}

/*
 * The end of the pass: every part must have given exactly as many events
 * as it spilled.
 */
static void
scan_finish(AASpillScan *scan)
{
	int			i;

	for (i = 0; i < scan->nparts; i++)
		if (scan->parts[i].found != scan->parts[i].txn->nspilled)
			count_mismatch(scan, &scan->parts[i], false);
	scan->done = true;
}

/* Read the next WAL record of the pass; an ERROR when there is none. */
static void
read_record(AASpillScan *scan)
{
	XLogRecord *record;
	char	   *errormsg = NULL;
	MemoryContext old;

	/* oversized records live until the next read: in the scan's context */
	old = MemoryContextSwitchTo(scan->cxt);
	scan->errcb.previous = error_context_stack;
	error_context_stack = &scan->errcb;
	record = XLogReadRecord(scan->reader, &errormsg);
	error_context_stack = scan->errcb.previous;
	MemoryContextSwitchTo(old);
	if (record != NULL)
		return;
	if (scan->private->end_of_wal)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("activity_audit writer found the end of the WAL at %X/%X while reading back the spilled events of transaction %u up to %X/%X",
						LSN_FORMAT_ARGS(scan->reader->EndRecPtr), scan->top,
						LSN_FORMAT_ARGS(scan->end)),
				 errdetail("That WAL was flushed and read before; the transaction is not delivered.")));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("activity_audit writer could not read back the spilled events of transaction %u from the WAL from %X/%X to %X/%X: %s",
					scan->top, LSN_FORMAT_ARGS(scan->start), LSN_FORMAT_ARGS(scan->end),
					errormsg ? errormsg : "unknown error"),
			 errdetail("The transaction is not delivered; the writer's replication slot keeps that WAL."),
			 errhint("Raising audit.writer_memory above the transaction's size lets the writer deliver it from memory when it tries again.")));
}

/*
 * Whether the message the reader holds is a spilled event of part, and if
 * so make it the scan's current event.  What the first read rejected is
 * skipped by its LSN; what it kept must be recognized again, and a
 * message with our prefix that it neither kept nor rejected means the two
 * reads disagree, which must not deliver anything.
 */
static bool
take_message(AASpillScan *scan, SpillPart *part)
{
	XLogReaderState *reader = scan->reader;
	XLogRecPtr	lsn = reader->ReadRecPtr;
	AATxn	   *txn = part->txn;
	AAMessage	m;
	const char *why;

	while (part->next_rejected < txn->nrejected &&
		   txn->rejected[part->next_rejected] < lsn)
		part->next_rejected++;
	if (part->next_rejected < txn->nrejected &&
		txn->rejected[part->next_rejected] == lsn)
	{
		part->next_rejected++;
		return false;
	}
	if (!aa_decode_message(reader, &m, &why))
	{
		if (why == NULL)
			return false;		/* not ours: another prefix */
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("activity_audit writer rejects the message at %X/%X of %s when reading it back from the WAL, which it did not reject when it first read it",
						LSN_FORMAT_ARGS(lsn), part_name(scan, part)),
				 errdetail("%s The transaction is not delivered.", why)));
	}
	if (++part->found > txn->nspilled)
		count_mismatch(scan, part, true);
	if (lsn == txn->spill_end && part->found != txn->nspilled)
		count_mismatch(scan, part, false);

	if (AA_EVENT_SIZE(m.len) > scan->ev_space)
	{
		if (scan->ev)
			pfree(scan->ev);
		/* m.len is bounded by aa_decode_message, far below MaxAllocSize */
		scan->ev_space = Min(Max(AA_EVENT_SIZE(m.len), 2 * scan->ev_space),
							 MaxAllocSize);
		scan->ev = MemoryContextAlloc(scan->cxt, scan->ev_space);
	}
	aa_event_fill(scan->ev, lsn, &m);
	return true;
}

/*
 * The next spilled event of the commit's parts in WAL order, or NULL when
 * all are read (the counts checked).  The event is valid until the next
 * call.
 */
AAEvent *
aa_spill_scan_next(AASpillScan *scan)
{
	if (scan->done)
		return NULL;
	if (scan->at_end)
	{
		scan_finish(scan);
		return NULL;
	}
	for (;;)
	{
		XLogReaderState *reader = scan->reader;
		XLogRecPtr	lsn;
		SpillPart  *part;

		read_record(scan);
		lsn = reader->ReadRecPtr;
		if (lsn > scan->end)
		{
			scan_finish(scan);
			return NULL;
		}
		if (XLogRecGetRmid(reader) != RM_LOGICALMSG_ID)
			continue;
		part = find_part(scan, XLogRecGetXid(reader));
		if (part == NULL || lsn < part->txn->spill_start ||
			lsn > part->txn->spill_end)
			continue;
		if (take_message(scan, part))
		{
			scan->at_end = lsn == scan->end;
			return scan->ev;
		}
	}
}

/* Release the scan: its reader, its WAL segment and its buffers. */
void
aa_spill_scan_end(AASpillScan *scan)
{
	XLogReaderFree(scan->reader);
	MemoryContextDelete(scan->cxt);
}

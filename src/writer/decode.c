/*-------------------------------------------------------------------------
 *
 * decode.c
 *		The writer's reading of WAL records: our logical messages go into
 *		their transaction's buffer, commit records deliver, abort records
 *		and running-xacts records drop.
 *
 * Only logical messages with our prefix and transaction records are
 * looked at, so the writer's cost follows the audit volume, not the write
 * volume.  A message with our prefix that the trigger did not sign, or
 * whose signature was used before (counters.c), is counted and reported,
 * never delivered.  A commit delivers the events of the transaction and
 * its committed subtransactions, merged in WAL order; compact rows are
 * put together with their headers on the way (assemble.c).
 *
 * This file must not format lines nor write to a sink (deliver.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "lib/binaryheap.h"
#include "replication/message.h"
#include "storage/standbydefs.h"
#include "utils/memutils.h"

#include "common/message.h"
#include "common/sign.h"
#include "writer/writer.h"

static uint64 forged_rejected = 0;
static StringInfoData event_text;	/* a compact row's event, put together */

/*
 * The full 64-bit id of a transaction that the WAL names by its 32-bit xid.
 * A commit record carries no epoch; a transaction the writer reads about
 * is at most 2^31 transactions older than the next xid (wraparound
 * protection), so an xid numerically above the next one is from the
 * previous epoch.
 */
static uint64
full_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next) && epoch > 0)
		epoch--;
	return ((uint64) epoch << 32) | xid;
}

/*
 * Whether an event belongs to the committing transaction.  Its signature
 * covers the full 64-bit transaction id it names; a real event copied into
 * another transaction, by someone who has seen one, names the wrong one --
 * also when the other transaction has the same 32-bit xid in a later epoch,
 * so all 64 bits are compared (top_full: full_xid() of the committing
 * top-level transaction).
 */
static inline bool
event_txid_matches(AAEvent *ev, uint64 top_full)
{
	return ev->txid == top_full;
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
 * Order of the merge heap: binaryheap keeps the greatest element first,
 * so the part whose current event has the lowest LSN compares greatest.
 */
static int
part_cmp(Datum a, Datum b, void *arg)
{
	AATxnCursor *parts = (AATxnCursor *) arg;
	XLogRecPtr	lsn_a = parts[DatumGetInt32(a)].cur->lsn;
	XLogRecPtr	lsn_b = parts[DatumGetInt32(b)].cur->lsn;

	if (lsn_a < lsn_b)
		return 1;
	if (lsn_a > lsn_b)
		return -1;
	return 0;
}

/*
 * A commit: deliver the events of the transaction and its committed
 * subtransactions, merged in WAL order.  Events the stream already held at
 * start (a restart re-reads WAL) are skipped, by commit LSN and position.
 * The parts are merged through a binary heap on their current event's LSN
 * (as reorderbuffer.c's ReorderBufferIterTXNInit does): a scan of every
 * part per event would make a commit of thousands of subtransactions
 * quadratic.
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
	uint64		top_full;
	AAReadAhead ra;
	binaryheap *heap;
	const char *why;

	aa_readahead_init(&ra);
	if ((txn = aa_txn_find(top)) != NULL)
		aa_cursor_start(&parts[nparts++], txn, &ra);
	for (i = 0; i < nsubxacts; i++)
		if ((txn = aa_txn_find(subxacts[i])) != NULL)
			aa_cursor_start(&parts[nparts++], txn, &ra);
	if (nparts == 0)
	{
		pfree(parts);
		return;
	}

	top_full = full_xid(top);
	if (event_text.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&event_text);
		MemoryContextSwitchTo(old);
	}
	aa_assemble_begin();
	heap = binaryheap_allocate(nparts, part_cmp, parts);
	for (i = 0; i < nparts; i++)
		if (parts[i].cur != NULL)
			binaryheap_add_unordered(heap, Int32GetDatum(i));
	binaryheap_build(heap);

	while (!binaryheap_empty(heap))
	{
		AATxnCursor *part = &parts[DatumGetInt32(binaryheap_first(heap))];
		AAEvent    *ev = part->cur;

		if (!event_txid_matches(ev, top_full))
			reject_forged(ev->lsn, "It is signed, but for another transaction.");
		else if (ev->kind == AA_MSG_HEADER)
			aa_assemble_header(ev);
		else if (ev->kind == AA_MSG_ROW && !aa_assemble_row(ev, &event_text, &why))
			ereport(WARNING,
					(errmsg("activity_audit writer cannot put together the event at %X/%X",
							LSN_FORMAT_ARGS(ev->lsn)),
					 errdetail("%s", why),
					 errhint("This is a bug in activity_audit; the event is not delivered.")));
		else
		{
			index++;
			if (!aa_deliver_already_done(commit_lsn, index))
			{
				if (ev->kind == AA_MSG_ROW)
					aa_deliver_event(event_text.data, event_text.len,
									 commit_lsn, committed_at, first);
				else
					aa_deliver_event(ev->data, ev->len, commit_lsn,
									 committed_at, first);
				first = false;
			}
		}
		aa_cursor_next(part);
		if (part->cur == NULL)
			(void) binaryheap_remove_first(heap);
		else
			binaryheap_replace_first(heap, binaryheap_first(heap));
	}
	binaryheap_free(heap);
	for (i = 0; i < nparts; i++)
	{
		aa_cursor_end(&parts[i]);
		aa_txn_drop(parts[i].txn);
	}
	pfree(parts);
}

/* An abort: drop the events of the (sub)transaction and its children. */
static void
drop_aborted(TransactionId xid, TransactionId *subxacts, int nsubxacts)
{
	AATxn	   *txn;
	int			i;

	if ((txn = aa_txn_find(xid)) != NULL)
		aa_txn_drop(txn);
	for (i = 0; i < nsubxacts; i++)
		if ((txn = aa_txn_find(subxacts[i])) != NULL)
			aa_txn_drop(txn);
}

/*
 * Whether a version-2 event's own "txid" key, right before its signature,
 * names the transaction that the signature names: the delivered event
 * says it.
 */
static bool
event_names_txid(const char *body, size_t len, uint64 txid)
{
	char		expect[32];
	int			n = snprintf(expect, sizeof(expect), AA_TXID_KEY UINT64_FORMAT, txid);

	return len >= (size_t) n && memcmp(body + len - n, expect, n) == 0;
}

/*
 * The number of the header a compact row refers to, the last thing before
 * its signature; *row_len becomes the length of the row's own part.
 */
static bool
row_header_number(const char *body, size_t len, uint64 *number, size_t *row_len)
{
	size_t		i = len;
	uint64		value = 0;
	uint64		scale = 1;

	while (i > 0 && body[i - 1] >= '0' && body[i - 1] <= '9' && len - i < 20)
	{
		i--;
		value += (uint64) (body[i] - '0') * scale;
		scale *= 10;
	}
	if (i == len || i == 0 || body[i - 1] != ',' || value == 0)
		return false;
	*number = value;
	*row_len = i - 1;
	return true;
}

/*
 * One of our messages: verify its signature and its number, tell its kind
 * (common/message.h) and keep it for its transaction.
 */
static void
file_message(XLogReaderState *reader, xl_logical_message *msg)
{
	const char *data = msg->message + msg->prefix_size;
	size_t		len = msg->message_size;
	XLogRecPtr	lsn = reader->ReadRecPtr;
	AASignature sig;
	AAMessageKind kind;
	uint64		number = 0;
	size_t		keep;

	/* the trigger writes only transactional, signed messages */
	if (!msg->transactional)
	{
		reject_forged(lsn, "It is not transactional.");
		return;
	}
	if (!aa_verify_message(data, len, &sig))
	{
		reject_forged(lsn, "It is not signed with this server's event key.");
		return;
	}
	keep = sig.body_len;
	if (sig.version == 1)
	{
		if (!aa_format1_allowed(lsn))
		{
			reject_forged(lsn, "It is in the format of release 0.1 but was written after the upgrade.");
			return;
		}
		kind = AA_MSG_EVENT;
	}
	else if (!aa_counter_accept(sig.txid, sig.counter, lsn))
	{
		reject_forged(lsn, "Its signature was used before: it is a copy of another message's.");
		return;
	}
	else if (!sig.in_array && strncmp(data, AA_EVENT_OPEN, sizeof(AA_EVENT_OPEN) - 1) == 0 &&
			 event_names_txid(data, keep, sig.txid))
		kind = AA_MSG_EVENT;
	else if (!sig.in_array && strncmp(data, AA_HEADER_OPEN, sizeof(AA_HEADER_OPEN) - 1) == 0)
	{
		kind = AA_MSG_HEADER;
		number = sig.counter;
	}
	else if (sig.in_array && strncmp(data, AA_ROW_OPEN, sizeof(AA_ROW_OPEN) - 1) == 0 &&
			 row_header_number(data, keep, &number, &keep))
		kind = AA_MSG_ROW;
	else
	{
		reject_forged(lsn, "It is signed, but is no message the audit trigger writes.");
		return;
	}
	aa_txn_add(XLogRecGetXid(reader), lsn, sig.txid, kind, number, data, keep);
}

/* Look at one WAL record. */
void
aa_decode_record(XLogReaderState *reader)
{
	uint8		rmid = XLogRecGetRmid(reader);
	uint8		info = XLogRecGetInfo(reader) & ~XLR_INFO_MASK;

	if (rmid == RM_LOGICALMSG_ID && info == XLOG_LOGICAL_MESSAGE)
	{
		xl_logical_message *msg = (xl_logical_message *) XLogRecGetData(reader);

		if (msg->prefix_size != sizeof(AA_MESSAGE_PREFIX) ||
			memcmp(msg->message, AA_MESSAGE_PREFIX, sizeof(AA_MESSAGE_PREFIX)) != 0)
			return;
		file_message(reader, msg);
	}
	else if (rmid == RM_XACT_ID)
	{
		uint8		op = info & XLOG_XACT_OPMASK;

		if (op == XLOG_XACT_COMMIT || op == XLOG_XACT_COMMIT_PREPARED)
		{
			xl_xact_parsed_commit parsed;
			TransactionId top;

			ParseCommitRecord(XLogRecGetInfo(reader),
							  (xl_xact_commit *) XLogRecGetData(reader), &parsed);
			top = op == XLOG_XACT_COMMIT_PREPARED ?
				parsed.twophase_xid : XLogRecGetXid(reader);

			deliver_commit(top, parsed.subxacts, parsed.nsubxacts,
						   reader->ReadRecPtr, parsed.xact_time);
			aa_counter_forget(full_xid(top));
		}
		else if (op == XLOG_XACT_ABORT || op == XLOG_XACT_ABORT_PREPARED)
		{
			xl_xact_parsed_abort parsed;
			TransactionId xid;

			ParseAbortRecord(XLogRecGetInfo(reader),
							 (xl_xact_abort *) XLogRecGetData(reader), &parsed);
			xid = op == XLOG_XACT_ABORT_PREPARED ?
				parsed.twophase_xid : XLogRecGetXid(reader);

			drop_aborted(xid, parsed.subxacts, parsed.nsubxacts);
			/* for a subtransaction's abort there is none to forget */
			aa_counter_forget(full_xid(xid));
		}
	}
	else if (rmid == RM_STANDBY_ID && info == XLOG_RUNNING_XACTS)
	{
		xl_running_xacts *running = (xl_running_xacts *) XLogRecGetData(reader);

		aa_txns_drop_before(running->oldestRunningXid);
		aa_counters_forget_before(full_xid(running->oldestRunningXid));
	}
}

/* Messages rejected as not ours since the worker started. */
uint64
aa_decode_forged_count(void)
{
	return forged_rejected;
}

/*-------------------------------------------------------------------------
 *
 * decode.c
 *		The writer's reading of WAL records: our logical messages go into
 *		their transaction's buffer, commit records deliver, abort records
 *		and running-xacts records drop.
 *
 * A message whose prefix only begins with ours is counted and reported too.
 * Only logical messages with our prefix and transaction records are
 * looked at (a prepare only names the transaction whose events wait), so the writer's cost follows the audit volume, not the write
 * volume.  A message with our prefix that the trigger did not sign, or
 * whose signature was used before (counters.c), is counted and reported,
 * never delivered.  A commit delivers the events of the transaction and
 * its committed subtransactions, merged in WAL order; those that were
 * dropped from memory past audit.writer_memory are read back from the WAL
 * (spill_scan.c), recognized by the same function as on the first read
 * (aa_decode_message); compact rows are put together with their headers on
 * the way (assemble.c).
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
#include "common/stream_line.h"
#include "guc.h"
#include "writer/writer.h"

static uint64 forged_rejected = 0;
static StringInfoData event_text;	/* a compact row's event, put together */

/*
 * One source of a commit's merge: a part's events in memory, or (scan set)
 * the spilled events of all its parts, read back from the WAL.
 */
typedef struct MergeSource
{
	AATxnCursor mem;			/* when scan is NULL */
	AASpillScan *scan;
	AAEvent    *cur;			/* current event, NULL at the end */
} MergeSource;

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

/*
 * Count and report a message that must not be delivered.  A rejection by
 * the first read of the WAL (xid: the record's) is also noted in xid's
 * buffer, so that reading a spilled range back takes exactly what the
 * first read took (aa_txn_note_rejected); InvalidTransactionId when the
 * event is rejected as its commit delivers.
 */
static void
reject_forged(TransactionId xid, XLogRecPtr lsn, const char *why)
{
	aa_txn_note_rejected(xid, lsn);
	forged_rejected++;
	ereport(WARNING,
			(errmsg("activity_audit writer rejected a message with prefix \"%s\" at %X/%X that the audit trigger did not write",
					AA_MESSAGE_PREFIX, LSN_FORMAT_ARGS(lsn)),
			 errdetail("%s", why),
			 errhint("Messages with this prefix are reserved for activity_audit; it is not delivered.")));
}


/*
 * Reject a message as it is first read.  One that lies before the last
 * commit the stream held when the writer started was read, and counted and
 * reported, by an earlier run: a restart reads the WAL again from the
 * slot's restart point (so also after the key it was checked under was
 * retired from audit.key_file).  It is still kept from delivery, quietly.
 */
static void
reject_read(TransactionId xid, XLogRecPtr lsn, const char *why)
{
	AAStreamPos start;

	aa_deliver_start_position(&start);
	if (lsn < start.commit_lsn)
	{
		aa_txn_note_rejected(xid, lsn);
		return;
	}
	reject_forged(xid, lsn, why);
}

/*
 * Whether an event can go into the stream and the log: one JSON object on
 * one line, of a size that fits the line's allocation.  The trigger writes
 * no other; one that is, signed by someone who has the event key, would
 * make every attempt to deliver its commit fail (stream.c refuses it), or
 * make a line of the log read like another, so it is rejected instead.
 */
static bool
event_deliverable(const char *text, Size len, const char **why)
{
	if (len > AA_MAX_DELIVERED_EVENT)
	{
		*why = "It is larger than any event the writer delivers.";
		return false;
	}
	if (len < 2 || text[0] != '{' || text[len - 1] != '}' ||
		memchr(text, '\n', len) != NULL || memchr(text, '\r', len) != NULL ||
		memchr(text, '\0', len) != NULL)
	{
		*why = "It is not one JSON object on one line, as every event the audit trigger writes is.";
		return false;
	}
	return true;
}

/*
 * Count and report a signed event that cannot be delivered (see
 * event_deliverable, aa_assemble_row): in the log, in forged_rejected and
 * in writer_status().last_error, where it stays until another error
 * replaces it, like lost WAL, since nothing later undoes it.  The commit's
 * other events are delivered.  A commit the stream held when the writer
 * started was reported by an earlier run: a restart reads it again.
 */
static void
reject_undeliverable(XLogRecPtr lsn, XLogRecPtr commit_lsn, const char *why)
{
	AAStreamPos start;
	char	   *msg;

	aa_deliver_start_position(&start);
	if (commit_lsn < start.commit_lsn)
		return;
	forged_rejected++;
	msg = psprintf("the event at %X/%X of the commit at %X/%X is not delivered: %s",
				   LSN_FORMAT_ARGS(lsn), LSN_FORMAT_ARGS(commit_lsn), why);
	aa_status_set_lasting_error(msg);
	ereport(WARNING,
			(errmsg("activity_audit writer cannot deliver the event at %X/%X",
					LSN_FORMAT_ARGS(lsn)),
			 errdetail("%s", why),
			 errhint("The event is not delivered; the writer goes on with the next.  Unless WAL was lost, it was signed by someone who has the event key, or this is a bug in activity_audit; please report it.")));
	pfree(msg);
}

/*
 * Order of the merge heap: binaryheap keeps the greatest element first,
 * so the source whose current event has the lowest LSN compares greatest.
 */
static int
source_cmp(Datum a, Datum b, void *arg)
{
	MergeSource *sources = (MergeSource *) arg;
	XLogRecPtr	lsn_a = sources[DatumGetInt32(a)].cur->lsn;
	XLogRecPtr	lsn_b = sources[DatumGetInt32(b)].cur->lsn;

	if (lsn_a < lsn_b)
		return 1;
	if (lsn_a > lsn_b)
		return -1;
	return 0;
}

/* Move a merge source to its next event (cur NULL at the end). */
static void
source_next(MergeSource *src)
{
	if (src->scan)
		src->cur = aa_spill_scan_next(src->scan);
	else
	{
		aa_cursor_next(&src->mem);
		src->cur = src->mem.cur;
	}
}

/*
 * A commit: deliver the events of the transaction and its committed
 * subtransactions, merged in WAL order.  Events the stream already held at
 * start (a restart re-reads WAL) are skipped, by commit LSN and position.
 *
 * Each part's events in memory are one source of the merge; the spilled
 * events of all parts, read back from the WAL in one pass (spill_scan.c),
 * are one more.  The sources are merged through a binary heap on their
 * current event's LSN (as reorderbuffer.c's ReorderBufferIterTXNInit
 * does): a scan of every part per event would make a commit of thousands
 * of subtransactions quadratic.
 */
static void
deliver_commit(TransactionId top, TransactionId *subxacts, int nsubxacts,
			   XLogRecPtr commit_lsn, TimestampTz committed_at)
{
	AATxn	  **parts = palloc(sizeof(AATxn *) * (nsubxacts + 1));
	MergeSource *sources = palloc(sizeof(MergeSource) * (nsubxacts + 2));
	AASpillScan *scan = NULL;
	int			nparts = 0;
	int			nsources = 0;
	int			i;
	int			index = 0;
	bool		first = true;
	bool		spilled = false;
	AATxn	   *txn;
	uint64		top_full;
	binaryheap *heap;
	const char *why;

	if ((txn = aa_txn_find(top)) != NULL)
		parts[nparts++] = txn;
	for (i = 0; i < nsubxacts; i++)
		if ((txn = aa_txn_find(subxacts[i])) != NULL)
			parts[nparts++] = txn;
	if (nparts == 0)
	{
		pfree(parts);
		pfree(sources);
		return;
	}

	for (i = 0; i < nparts; i++)
	{
		MergeSource *src = &sources[nsources];

		spilled |= parts[i]->nspilled > 0;
		if (parts[i]->events == NIL)
			continue;
		src->scan = NULL;
		aa_cursor_start(&src->mem, parts[i]);
		src->cur = src->mem.cur;
		nsources++;
	}
	if (spilled)
	{
		scan = aa_spill_scan_begin(top, parts, nparts);
		sources[nsources].scan = scan;
		sources[nsources].cur = aa_spill_scan_next(scan);
		nsources++;
	}

	top_full = full_xid(top);
	if (event_text.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&event_text);
		MemoryContextSwitchTo(old);
	}
	aa_assemble_begin();
	heap = binaryheap_allocate(nsources, source_cmp, sources);
	for (i = 0; i < nsources; i++)
		if (sources[i].cur != NULL)
			binaryheap_add_unordered(heap, Int32GetDatum(i));
	binaryheap_build(heap);

	while (!binaryheap_empty(heap))
	{
		MergeSource *src = &sources[DatumGetInt32(binaryheap_first(heap))];
		AAEvent    *ev = src->cur;

		if (!event_txid_matches(ev, top_full))
			reject_forged(InvalidTransactionId, ev->lsn,
						  "It is signed, but for another transaction.");
		else if (ev->kind == AA_MSG_HEADER)
			aa_assemble_header(ev);
		else if (ev->kind == AA_MSG_ROW && !aa_assemble_row(ev, &event_text, &why))
			reject_undeliverable(ev->lsn, commit_lsn, why);
		else if (!event_deliverable(ev->kind == AA_MSG_ROW ? event_text.data : ev->data,
									ev->kind == AA_MSG_ROW ? event_text.len : ev->len,
									&why))
			reject_undeliverable(ev->lsn, commit_lsn, why);
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
		source_next(src);
		if (src->cur == NULL)
			(void) binaryheap_remove_first(heap);
		else
			binaryheap_replace_first(heap, binaryheap_first(heap));
	}
	binaryheap_free(heap);
	if (scan)
		aa_spill_scan_end(scan);
	for (i = 0; i < nparts; i++)
		aa_txn_drop(parts[i]);
	pfree(parts);
	pfree(sources);
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
	const char *p;
	uint64		value;

	p = aa_uint64_before(body, body + len, &value);
	/* as the trigger writes it: no leading zeros */
	return p != NULL && value == txid && (p[0] != '0' || body + len - p == 1) &&
		p - body >= (ptrdiff_t) (sizeof(AA_TXID_KEY) - 1) &&
		memcmp(p - (sizeof(AA_TXID_KEY) - 1), AA_TXID_KEY, sizeof(AA_TXID_KEY) - 1) == 0;
}

/*
 * The number of the header a compact row refers to, the last thing before
 * its signature; *row_len becomes the length of the row's own part.
 */
static bool
row_header_number(const char *body, size_t len, uint64 *number, size_t *row_len)
{
	const char *p = aa_uint64_before(body, body + len, number);

	if (p == NULL || p == body || p[-1] != ',' || *number == 0)
		return false;
	*row_len = (p - body) - 1;
	return true;
}

/*
 * Why a message whose prefix begins with ours is rejected, naming its
 * prefix: printable ASCII as it is, any other byte (and quote and
 * backslash) as \xNN, so that whatever it holds cannot make the log line
 * read like something else nor fail to be written; at most 64 bytes.
 */
static const char *
lookalike_why(const char *prefix, Size size)
{
	StringInfoData buf;
	Size		len = strnlen(prefix, size);
	Size		i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "Its prefix \"");
	for (i = 0; i < Min(len, 64); i++)
	{
		unsigned char c = (unsigned char) prefix[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			appendStringInfoChar(&buf, (char) c);
		else
			appendStringInfo(&buf, "\\x%02x", c);
	}
	appendStringInfo(&buf, "\"%s only begins with \"%s\": prefixes that do are reserved for activity_audit.",
					 len > 64 ? " (cut)" : "", AA_MESSAGE_PREFIX);
	return buf.data;
}

/*
 * Whether a WAL record is one of our messages with a valid signature, and
 * what it is (common/message.h), into *m; the same on the first read and
 * when spilled events are read back (spill_scan.c), so both recognize the
 * same messages.  *why is set when it has our prefix but is not to be
 * delivered, NULL when it is not ours at all.  Whether its number was used
 * before is the first read's to check (counters.c).
 */
bool
aa_decode_message(XLogReaderState *reader, AAMessage *m, const char **why)
{
	xl_logical_message *msg;
	const char *data;
	size_t		len;
	AASignature sig;
	size_t		keep;

	*why = NULL;
	if (XLogRecGetRmid(reader) != RM_LOGICALMSG_ID ||
		(XLogRecGetInfo(reader) & ~XLR_INFO_MASK) != XLOG_LOGICAL_MESSAGE)
		return false;
	msg = (xl_logical_message *) XLogRecGetData(reader);
	if (msg->prefix_size != sizeof(AA_MESSAGE_PREFIX) ||
		memcmp(msg->message, AA_MESSAGE_PREFIX, sizeof(AA_MESSAGE_PREFIX)) != 0)
	{
		/*
		 * A prefix that only begins with ours ("activity_audit ", or
		 * "activity_audit, sz: 1 content:" that test_decoding prints like
		 * ours) is not ours either, but is meant to pass for it with
		 * consumers that match prefixes loosely: reported like a forgery.
		 */
		if (msg->prefix_size > sizeof(AA_MESSAGE_PREFIX) &&
			memcmp(msg->message, AA_MESSAGE_PREFIX, sizeof(AA_MESSAGE_PREFIX) - 1) == 0)
			*why = lookalike_why(msg->message, msg->prefix_size);
		return false;
	}
	data = msg->message + msg->prefix_size;
	len = msg->message_size;

	/* the trigger writes only transactional, signed messages */
	if (!msg->transactional)
	{
		*why = "It is not transactional.";
		return false;
	}
	/*
	 * ... no larger than audit.max_event_size can be, so that its copies
	 * (txnbuf.c, spill_scan.c) and its event are allocations of checked size
	 */
	if (len > (size_t) AA_MAX_EVENT_SIZE_CAP * 1024 + AA_SIGNATURE_ROOM)
	{
		*why = "It is larger than any message the audit trigger writes.";
		return false;
	}
	if (!aa_verify_message(data, len, &sig))
	{
		*why = "It is not signed with this server's event key.";
		return false;
	}
	keep = sig.body_len;
	m->version = sig.version;
	m->txid = sig.txid;
	m->counter = sig.counter;
	m->number = 0;
	if (sig.version == 1)
	{
		if (!aa_format1_allowed(reader->ReadRecPtr))
		{
			*why = "It is in the format of release 0.1 but was written after the upgrade.";
			return false;
		}
		m->kind = AA_MSG_EVENT;
	}
	else if (!sig.in_array && strncmp(data, AA_EVENT_OPEN, sizeof(AA_EVENT_OPEN) - 1) == 0 &&
			 event_names_txid(data, keep, sig.txid))
		m->kind = AA_MSG_EVENT;
	else if (!sig.in_array && strncmp(data, AA_HEADER_OPEN, sizeof(AA_HEADER_OPEN) - 1) == 0)
	{
		m->kind = AA_MSG_HEADER;
		m->number = sig.counter;
	}
	else if (sig.in_array && strncmp(data, AA_ROW_OPEN, sizeof(AA_ROW_OPEN) - 1) == 0 &&
			 row_header_number(data, keep, &m->number, &keep))
		m->kind = AA_MSG_ROW;
	else
	{
		*why = "It is signed, but is no message the audit trigger writes.";
		return false;
	}
	m->data = data;
	m->len = keep;
	return true;
}

/* Look at one WAL record. */
void
aa_decode_record(XLogReaderState *reader)
{
	uint8		rmid = XLogRecGetRmid(reader);
	uint8		info = XLogRecGetInfo(reader) & ~XLR_INFO_MASK;

	if (rmid == RM_LOGICALMSG_ID && info == XLOG_LOGICAL_MESSAGE)
	{
		AAMessage	m;
		const char *why;

		if (!aa_decode_message(reader, &m, &why))
		{
			if (why != NULL)
				reject_read(XLogRecGetXid(reader), reader->ReadRecPtr, why);
		}
		/* the first read alone sees every number; the reread skips rejects */
		else if (m.version == 2 &&
				 !aa_counter_accept(m.txid, m.counter, reader->ReadRecPtr))
			reject_read(XLogRecGetXid(reader), reader->ReadRecPtr,
						  "Its signature was used before: it is a copy of another message's.");
		else
			aa_txn_add(XLogRecGetXid(reader), reader->ReadRecPtr, &m);
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
		else if (op == XLOG_XACT_PREPARE)
		{
			xl_xact_parsed_prepare parsed;

			/* its events wait for COMMIT PREPARED: note which one holds them */
			ParsePrepareRecord(XLogRecGetInfo(reader),
							   (xl_xact_prepare *) XLogRecGetData(reader), &parsed);
			aa_txns_prepared(parsed.twophase_xid, parsed.subxacts,
							 parsed.nsubxacts, parsed.twophase_gid,
							 parsed.xact_time);
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

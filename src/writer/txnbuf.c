/*-------------------------------------------------------------------------
 *
 * txnbuf.c
 *		The writer's transaction buffers: the events of each open
 *		(sub)transaction, kept in WAL order until its commit or abort.
 *
 * Buffers are keyed by the xid that wrote the events, subtransactions
 * included; a commit merges its parts (decode.c).  Past audit.writer_memory
 * the largest buffer's events are dropped from memory (as PostgreSQL's
 * reorderbuffer spills its largest transaction), and only their range in
 * the WAL and their count are kept: at the commit they are read back from
 * the WAL (spill_scan.c), which the writer's slot keeps anyway from the
 * oldest open transaction's first event on.  So a transaction of millions
 * of rows or subtransactions neither makes the writer grow with it nor
 * writes a copy of its events to disk, and the small transactions around
 * it stay in memory.
 *
 * Because all of a buffer's events in memory go when it is spilled, its
 * spilled events are always a prefix of its events in WAL order: the range
 * from its first event to the last one dropped.  What the first read of
 * the WAL rejected inside that range is remembered per buffer, so that
 * reading it back takes exactly what the first read took.
 *
 * This file must not decide what is delivered; it only keeps events.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "common/json_out.h"
#include "common/message.h"
#include "guc.h"
#include "writer/writer.h"

/* Where earlier versions of the writer spilled events to files. */
#define AA_OLD_SPILL_DIR	AA_STATE_DIR "/spill"

/* The buffers, keyed by xid, and the memory their events use. */
static HTAB *txns = NULL;
static MemoryContext txn_cxt = NULL;
static Size buffered_bytes = 0;	/* events of open transactions in memory */
static uint64 spilled_bytes = 0;	/* events of open transactions not in
									 * memory, to be read back from the WAL */

/*
 * The buffers holding events in memory, as a binary max-heap on mem_bytes
 * (AATxn.size_index is a buffer's place in it), so that the largest one is
 * found at once however many transactions are open: a scan of all buffers
 * per spill would be quadratic in the number of small subtransactions.
 */
static AATxn **by_size = NULL;
static int	by_size_len = 0;
static int	by_size_cap = 0;

/*
 * The buffers in the order of their first event in the WAL: a buffer is
 * made at its first event, which comes after every other buffer's first
 * event, so appending keeps the order, and the oldest is found at once
 * (writer_status() asks after every delivery).
 */
static dlist_head by_age = DLIST_STATIC_INIT(by_age);

/* Create the (empty) buffers; once, when the worker starts. */
void
aa_txns_init(void)
{
	HASHCTL		ctl;

	txn_cxt = AllocSetContextCreate(TopMemoryContext, "activity_audit pending events",
									ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(AATxn);
	ctl.hcxt = TopMemoryContext;
	txns = hash_create("activity_audit pending transactions", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Put a buffer at place j of the by-size heap, and tell it where it is. */
static inline void
by_size_set(int j, AATxn *txn)
{
	by_size[j] = txn;
	txn->size_index = j;
}

/* Restore the heap order after the buffer at place i grew. */
static void
by_size_up(int i)
{
	AATxn	   *txn = by_size[i];

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (by_size[parent]->mem_bytes >= txn->mem_bytes)
			break;
		by_size_set(i, by_size[parent]);
		i = parent;
	}
	by_size_set(i, txn);
}

/* Restore the heap order after the buffer at place i shrank. */
static void
by_size_down(int i)
{
	AATxn	   *txn = by_size[i];

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= by_size_len)
			break;
		if (child + 1 < by_size_len &&
			by_size[child + 1]->mem_bytes > by_size[child]->mem_bytes)
			child++;
		if (by_size[child]->mem_bytes <= txn->mem_bytes)
			break;
		by_size_set(i, by_size[child]);
		i = child;
	}
	by_size_set(i, txn);
}

/* A buffer's first event in memory: it becomes a candidate for spilling. */
static void
by_size_insert(AATxn *txn)
{
	if (by_size_len == by_size_cap)
	{
		by_size_cap = Max(64, by_size_cap * 2);
		by_size = by_size == NULL ?
			MemoryContextAlloc(TopMemoryContext, by_size_cap * sizeof(AATxn *)) :
			repalloc(by_size, by_size_cap * sizeof(AATxn *));
	}
	by_size_set(by_size_len++, txn);
	by_size_up(txn->size_index);
}

/* A buffer with nothing left in memory (spilled or dropped) leaves the heap. */
static void
by_size_delete(AATxn *txn)
{
	int			i = txn->size_index;
	AATxn	   *last = by_size[--by_size_len];

	txn->size_index = -1;
	if (last == txn)
		return;
	by_size_set(i, last);
	by_size_up(i);
	by_size_down(last->size_index);
}

/* How many (sub)transactions have buffered events, for writer_status(). */
int
aa_txns_count(void)
{
	return (int) hash_get_num_entries(txns);
}

/*
 * Bytes of events of open transactions that are not held in memory and
 * are to be read back from the WAL at their commit, for writer_status().
 */
uint64
aa_txns_spilled_bytes(void)
{
	return spilled_bytes;
}

/* The buffer of an xid, or NULL. */
AATxn *
aa_txn_find(TransactionId xid)
{
	return hash_search(txns, &xid, HASH_FIND, NULL);
}

/* Free a transaction's buffer. */
void
aa_txn_drop(AATxn *txn)
{
	ListCell   *lc;

	foreach(lc, txn->events)
		pfree(lfirst(lc));
	list_free(txn->events);
	if (txn->rejected)
		pfree(txn->rejected);
	if (txn->gid)
		pfree(txn->gid);
	buffered_bytes -= txn->mem_bytes;
	spilled_bytes -= txn->spill_bytes;
	if (txn->size_index >= 0)
		by_size_delete(txn);
	dlist_delete(&txn->by_age);
	hash_search(txns, &txn->xid, HASH_REMOVE, NULL);
}

/*
 * Drop a transaction's events from memory, keeping only where they are in
 * the WAL and how many there are, so that a transaction of millions of
 * rows does not make the writer grow with it; its commit reads them back
 * from the WAL (spill_scan.c).  All of its events in memory go, so what is
 * not in memory stays one range from its first event on, however often it
 * is spilled.
 */
static void
spill_txn(AATxn *txn)
{
	ListCell   *lc;

	Assert(txn->events != NIL);
	if (XLogRecPtrIsInvalid(txn->spill_start))
		txn->spill_start = ((AAEvent *) linitial(txn->events))->lsn;
	Assert(txn->spill_start == txn->first_lsn);
	foreach(lc, txn->events)
	{
		AAEvent    *ev = lfirst(lc);

		txn->spill_end = ev->lsn;
		txn->spill_bytes += ev->len;
		spilled_bytes += ev->len;
		txn->nspilled++;
		pfree(ev);
	}
	list_free(txn->events);
	txn->events = NIL;
	buffered_bytes -= txn->mem_bytes;
	txn->mem_bytes = 0;
	Assert(txn->size_index >= 0);
	by_size_delete(txn);
}

/* Position a cursor on a transaction's first event in memory. */
void
aa_cursor_start(AATxnCursor *c, AATxn *txn)
{
	c->txn = txn;
	c->lc = list_head(txn->events);
	aa_cursor_next(c);
}

/* Move a cursor to the transaction's next event (cur NULL at the end). */
void
aa_cursor_next(AATxnCursor *c)
{
	if (c->lc == NULL)
	{
		c->cur = NULL;
		return;
	}
	c->cur = lfirst(c->lc);
	c->lc = lnext(c->txn->events, c->lc);
}

/*
 * Make ev (of AA_EVENT_SIZE(m->len) bytes) the buffered form of a message
 * as decode.c classified it (see AAEvent): an event's signed text before
 * its "sig" key is closed again with a brace.  Messages kept in memory and
 * messages read back from the WAL are made here alike, so both deliver the
 * same text.
 */
void
aa_event_fill(AAEvent *ev, XLogRecPtr lsn, const AAMessage *m)
{
	Size		len = m->len;

	ev->lsn = lsn;
	ev->txid = m->txid;
	ev->kind = m->kind;
	ev->number = m->number;
	memcpy(ev->data, m->data, len);
	if (m->kind == AA_MSG_EVENT)
	{
		/* the event's closing brace, which its signature replaced */
		ev->data[len++] = '}';
	}
	ev->len = len;
	ev->data[len] = '\0';
}

/*
 * The "timestamp" an event or a compact row begins with (common/message.h),
 * into *ts; false for a header, which has none.
 */
static bool
message_time(const AAMessage *m, TimestampTz *ts)
{
	Size		skip;

	if (m->kind == AA_MSG_ROW)
		skip = sizeof(AA_ROW_OPEN) - 1;
	else if (m->kind == AA_MSG_EVENT)
		skip = sizeof(AA_EVENT_OPEN);	/* and the string's quote */
	else
		return false;
	return m->len >= skip + AA_UTC_TEXT_LEN &&
		aa_parse_utc(m->data + skip, AA_UTC_TEXT_LEN, ts);
}

/*
 * Keep one of our messages until its transaction ends, as decode.c has
 * classified it (see AAEvent).
 */
void
aa_txn_add(TransactionId xid, XLogRecPtr lsn, const AAMessage *m)
{
	AATxn	   *txn;
	AAEvent    *ev;
	bool		found;
	MemoryContext old;
	Size		space;

	txn = hash_search(txns, &xid, HASH_ENTER, &found);
	if (!found)
	{
		txn->first_lsn = lsn;
		txn->txid = m->txid;
		txn->first_at = 0;
		txn->gid = NULL;
		txn->prepared_at = 0;
		txn->events = NIL;
		txn->mem_bytes = 0;
		txn->spill_start = InvalidXLogRecPtr;
		txn->spill_end = InvalidXLogRecPtr;
		txn->nspilled = 0;
		txn->spill_bytes = 0;
		txn->rejected = NULL;
		txn->nrejected = 0;
		txn->maxrejected = 0;
		txn->size_index = -1;
		dlist_push_tail(&by_age, &txn->by_age);
	}
	if (txn->first_at == 0)
	{
		TimestampTz at;

		if (message_time(m, &at))
			txn->first_at = at;
	}
	old = MemoryContextSwitchTo(txn_cxt);
	ev = palloc(AA_EVENT_SIZE(m->len));
	aa_event_fill(ev, lsn, m);
	txn->events = lappend(txn->events, ev);
	MemoryContextSwitchTo(old);
	/* count what the allocation really takes, so the limit is the memory */
	space = GetMemoryChunkSpace(ev);
	txn->mem_bytes += space;
	buffered_bytes += space;
	if (txn->size_index < 0)
		by_size_insert(txn);
	else
		by_size_up(txn->size_index);

	/*
	 * Over the limit, spill the largest buffer, not this one: one big
	 * transaction then leaves memory in large pieces while the small ones
	 * around it stay, instead of each small transaction that happens to
	 * cross the limit having to be read back from the WAL.
	 */
	while (buffered_bytes > (Size) aa_writer_memory * 1024)
	{
		Assert(by_size_len > 0);
		spill_txn(by_size[0]);
	}
}

/*
 * A message with our prefix of xid at lsn that the first read of the WAL
 * rejected (decode.c).  The re-read of a spilled range recognizes our
 * messages by what they are alone (aa_decode_message); a message rejected
 * for what came before it in its transaction would look acceptable to
 * it, so it skips the LSNs noted here instead.  Only a transaction that
 * has a buffer can have a spilled range around lsn (its range starts at
 * its first event), so nothing is noted for others.  8 bytes a message,
 * freed with the buffer; they arrive in WAL order, so the list is sorted.
 */
void
aa_txn_note_rejected(TransactionId xid, XLogRecPtr lsn)
{
	AATxn	   *txn;

	if (!TransactionIdIsValid(xid) || (txn = aa_txn_find(xid)) == NULL)
		return;
	Assert(txn->nrejected == 0 || txn->rejected[txn->nrejected - 1] < lsn);
	if (txn->nrejected == txn->maxrejected)
	{
		txn->maxrejected = Max(8, txn->maxrejected * 2);
		txn->rejected = txn->rejected == NULL ?
			MemoryContextAlloc(txn_cxt, txn->maxrejected * sizeof(XLogRecPtr)) :
			repalloc(txn->rejected, txn->maxrejected * sizeof(XLogRecPtr));
	}
	txn->rejected[txn->nrejected++] = lsn;
}

/*
 * A running-xacts record: transactions older than the oldest running one
 * that still have buffers ended without a commit or abort record (a crash):
 * they never committed, so their events go.
 */
void
aa_txns_drop_before(TransactionId oldest_running)
{
	HASH_SEQ_STATUS status;
	AATxn	   *txn;

	hash_seq_init(&status, txns);
	while ((txn = hash_seq_search(&status)) != NULL)
	{
		if (TransactionIdPrecedes(txn->xid, oldest_running))
			aa_txn_drop(txn);
	}
}

/*
 * A PREPARE TRANSACTION record: its buffers (the transaction's and its
 * subtransactions') wait for COMMIT PREPARED or ROLLBACK PREPARED, however
 * long that takes; note its name and time, so that writer_status() can say
 * which prepared transaction holds the WAL.
 */
void
aa_txns_prepared(TransactionId top, TransactionId *subxacts, int nsubxacts,
				 const char *gid, TimestampTz prepared_at)
{
	int			i;

	for (i = -1; i < nsubxacts; i++)
	{
		AATxn	   *txn = aa_txn_find(i < 0 ? top : subxacts[i]);

		if (txn == NULL)
			continue;
		if (txn->gid)
			pfree(txn->gid);
		txn->gid = MemoryContextStrdup(txn_cxt, gid);
		txn->prepared_at = prepared_at;
	}
}

/*
 * The buffer whose first event is oldest in the WAL (NULL: none): the open
 * transaction that makes the writer's slot keep the most WAL.  The writer
 * still needs the WAL from its first event on, in memory or spilled
 * (spilled events are read back from there at the commit).
 */
AATxn *
aa_txns_oldest(void)
{
	if (dlist_is_empty(&by_age))
		return NULL;
	return dlist_head_element(AATxn, by_age, &by_age);
}

/*
 * Remove the spill files an earlier version of the writer left, once, at
 * start: "<xid>.spill" in pg_activity_audit/spill, which it wrote for
 * transactions open at a crash or shutdown and which could hold gigabytes.
 * Nothing reads them now (spilled events are read back from the WAL).  The
 * directory itself and any other file in it are left alone (it may be a
 * mount point or a link an administrator made for the old spill files),
 * and a missing directory is not created.
 */
void
aa_txns_remove_spill_files(void)
{
	DIR		   *dir;
	struct dirent *de;
	int			removed = 0;

	dir = AllocateDir(AA_OLD_SPILL_DIR);
	if (dir == NULL)
	{
		if (errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not open directory \"%s\": %m", AA_OLD_SPILL_DIR),
					 errhint("The directory may hold spill files of an earlier version of activity_audit, which are no longer used and can be removed.")));
		return;
	}
	while ((de = ReadDirExtended(dir, AA_OLD_SPILL_DIR, WARNING)) != NULL)
	{
		char		path[MAXPGPATH];
		size_t		digits = strspn(de->d_name, "0123456789");

		if (digits == 0 || strcmp(de->d_name + digits, ".spill") != 0)
			continue;
		snprintf(path, sizeof(path), AA_OLD_SPILL_DIR "/%s", de->d_name);
		if (unlink(path) == 0)
			removed++;
		else
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(dir);
	if (removed > 0)
		ereport(LOG,
				(errmsg("activity_audit writer removed %d spill files of an earlier version from \"%s\"",
						removed, AA_OLD_SPILL_DIR),
				 errdetail("Events that do not fit into audit.writer_memory are read back from the WAL now.")));
}

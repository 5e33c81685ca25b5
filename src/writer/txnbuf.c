/*-------------------------------------------------------------------------
 *
 * txnbuf.c
 *		The writer's transaction buffers: the events of each open
 *		(sub)transaction, kept in WAL order until its commit or abort.
 *
 * Buffers are keyed by the xid that wrote the events, subtransactions
 * included; a commit merges its parts (decode.c).  Past audit.writer_memory
 * the largest buffer's events spill to a file of its own under
 * pg_activity_audit/spill (as PostgreSQL's reorderbuffer spills its
 * largest transaction), read back in large pieces, so a transaction of
 * millions of rows does not make the writer grow with it and the small
 * transactions around it stay in memory.  Spill files are private to one
 * run of the writer: after a restart the WAL is read again.
 *
 * This file must not decide what is delivered; it only keeps events.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "guc.h"
#include "writer/writer.h"

/* The buffers, keyed by xid, and the memory their events use. */
static HTAB *txns = NULL;
static MemoryContext txn_cxt = NULL;
static Size buffered_bytes = 0;	/* events of open transactions in memory */
static uint64 spilled_bytes = 0;

/*
 * The buffers holding events in memory, as a binary max-heap on mem_bytes
 * (AATxn.size_index is a buffer's place in it), so that the largest one is
 * found at once however many transactions are open: a scan of all buffers
 * per spill would be quadratic in the number of small subtransactions.
 */
static AATxn **by_size = NULL;
static int	by_size_len = 0;
static int	by_size_cap = 0;

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

/* Bytes of events spilled to disk since the worker started. */
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
	buffered_bytes -= txn->mem_bytes;
	if (txn->size_index >= 0)
		by_size_delete(txn);
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
	Assert(txn->size_index >= 0);
	by_size_delete(txn);
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
void
aa_cursor_next(AATxnCursor *c)
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
void
aa_cursor_start(AATxnCursor *c, AATxn *txn)
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
	aa_cursor_next(c);
}

/* Release what a cursor read ahead. */
void
aa_cursor_end(AATxnCursor *c)
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
void
aa_txn_add(TransactionId xid, XLogRecPtr lsn, uint64 event_txid,
			   const char *data, Size len)
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
		txn->events = NIL;
		txn->mem_bytes = 0;
		txn->spill = -1;
		txn->spill_size = 0;
		txn->nspilled = 0;
		txn->size_index = -1;
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
	space = GetMemoryChunkSpace(ev);
	txn->mem_bytes += space;
	buffered_bytes += space;
	if (txn->size_index < 0)
		by_size_insert(txn);
	else
		by_size_up(txn->size_index);

	/*
	 * Over the limit, spill the largest buffer, not this one: one big
	 * transaction then goes to disk in large pieces while the small ones
	 * around it stay in memory, instead of each small transaction that
	 * happens to cross the limit getting a spill file of its own.
	 */
	while (buffered_bytes > (Size) aa_writer_memory * 1024)
	{
		Assert(by_size_len > 0);
		spill_txn(by_size[0]);
	}
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

/* The oldest WAL position the writer still needs. */
XLogRecPtr
aa_txns_needed_lsn(XLogRecPtr next_lsn)
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
 * Start with an empty spill directory: whatever an earlier run spilled is
 * read again from the WAL.
 */
void
aa_txns_prepare_spill_dir(void)
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

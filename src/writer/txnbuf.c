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
 * largest transaction), read back at commit in large pieces through a
 * fixed read-ahead however many parts the commit merges, so a transaction
 * of millions of rows or subtransactions does not make the writer grow
 * with it and the small transactions around it stay in memory.  Spill
 * files are private to one run of the writer: after a restart the WAL is
 * read again.
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

/*
 * Read-ahead of spilled events at a commit: AA_READAHEAD_BUFFERS buffers
 * of AA_READAHEAD_SIZE bytes at most (256 kB) shared by all its parts,
 * however many subtransactions it merges.
 */
#define AA_READAHEAD_SIZE		(32 * 1024)
#define AA_READAHEAD_BUFFERS	8

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
 * Prepare the read-ahead of one commit's cursors.  Their buffers are
 * allocated in the current context, so an error frees them with it.
 */
void
aa_readahead_init(AAReadAhead *ra)
{
	ra->cxt = CurrentMemoryContext;
	dlist_init(&ra->holders);
	ra->nbuffers = 0;
}

/*
 * Read n bytes of the spill file at file_pos straight into dst: for the
 * first event of each part (most parts of a commit of many
 * subtransactions wait long before their turn) and for pieces as large as
 * a read-ahead buffer.
 */
static void
spill_read(AATxnCursor *c, char *dst, int n)
{
	while (n > 0)
	{
		int			r = FileRead(c->txn->spill, dst, n, c->file_pos,
								 PG_WAIT_EXTENSION);

		if (r <= 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read spill file of transaction %u: %m", c->txn->xid)));
		dst += r;
		n -= r;
		c->file_pos += r;
	}
}

/*
 * Give a cursor a read-ahead buffer: a new one while the commit has fewer
 * than AA_READAHEAD_BUFFERS, else the one filled least recently, whose
 * unread bytes its cursor reads again when its turn comes.  So a commit
 * merging thousands of spilled subtransactions holds a fixed amount of
 * read-ahead, and the parts being read still read in large pieces.
 */
static void
cursor_take_buffer(AATxnCursor *c)
{
	AAReadAhead *ra = c->ra;

	if (ra->nbuffers < AA_READAHEAD_BUFFERS)
	{
		c->rbuf = MemoryContextAlloc(ra->cxt, AA_READAHEAD_SIZE);
		ra->nbuffers++;
	}
	else
	{
		AATxnCursor *victim = dlist_container(AATxnCursor, rbuf_node,
											  dlist_pop_head_node(&ra->holders));

		victim->file_pos -= victim->rbuf_len - victim->rbuf_pos;
		c->rbuf = victim->rbuf;
		victim->rbuf = NULL;
		victim->rbuf_len = victim->rbuf_pos = 0;
	}
	dlist_push_tail(&ra->holders, &c->rbuf_node);
}

/* Give back a cursor's buffer: its spill file is read, or it ends. */
static void
cursor_release_buffer(AATxnCursor *c)
{
	if (c->rbuf == NULL)
		return;
	dlist_delete(&c->rbuf_node);
	pfree(c->rbuf);
	c->rbuf = NULL;
	c->rbuf_len = c->rbuf_pos = 0;
	c->ra->nbuffers--;
}

/*
 * Copy the next n bytes of a cursor's spill file to dst, through its
 * read-ahead buffer, refilled in pieces of AA_READAHEAD_SIZE; without
 * read-ahead (readahead false, or a piece that large) straight from the
 * file, so that a large event never needs a larger buffer.
 */
static void
cursor_read(AATxnCursor *c, char *dst, int n, bool readahead)
{
	while (n > 0)
	{
		int			avail = c->rbuf_len - c->rbuf_pos;
		off_t		left;

		if (avail > 0)
		{
			int			k = Min(avail, n);

			memcpy(dst, c->rbuf + c->rbuf_pos, k);
			c->rbuf_pos += k;
			dst += k;
			n -= k;
			continue;
		}
		if (!readahead || n >= AA_READAHEAD_SIZE)
		{
			spill_read(c, dst, n);
			return;
		}
		if (c->rbuf == NULL)
			cursor_take_buffer(c);
		else
			dlist_move_tail(&c->ra->holders, &c->rbuf_node);
		left = c->txn->spill_size - c->file_pos;
		c->rbuf_pos = 0;
		c->rbuf_len = FileRead(c->txn->spill, c->rbuf,
							   (int) Min(left, (off_t) AA_READAHEAD_SIZE),
							   c->file_pos, PG_WAIT_EXTENSION);
		if (c->rbuf_len <= 0)
		{
			c->rbuf_len = 0;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read spill file of transaction %u: %m", c->txn->xid)));
		}
		c->file_pos += c->rbuf_len;
	}
}

/*
 * Move a cursor to the transaction's next event (cur NULL at the end);
 * readahead as for cursor_read.
 */
static void
cursor_advance(AATxnCursor *c, bool readahead)
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

		cursor_read(c, (char *) &head, hlen, readahead);
		c->owned = palloc(hlen + head.len + 1);
		memcpy(c->owned, &head, hlen);
		cursor_read(c, c->owned->data, head.len, readahead);
		c->owned->data[head.len] = '\0';
		if (--c->file_left == 0)
			cursor_release_buffer(c);
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

/* Move a cursor to the transaction's next event (cur NULL at the end). */
void
aa_cursor_next(AATxnCursor *c)
{
	cursor_advance(c, true);
}

/*
 * Position a cursor on a transaction's first event.  That one is read
 * without read-ahead: a commit may start thousands of cursors, and most
 * wait long before their turn.
 */
void
aa_cursor_start(AATxnCursor *c, AATxn *txn, AAReadAhead *ra)
{
	c->txn = txn;
	c->ra = ra;
	c->file_left = txn->nspilled;
	c->file_pos = 0;
	c->rbuf = NULL;
	c->rbuf_len = c->rbuf_pos = 0;
	c->lc = list_head(txn->events);
	c->cur = NULL;
	c->owned = NULL;
	cursor_advance(c, false);
}

/* Release what a cursor read ahead. */
void
aa_cursor_end(AATxnCursor *c)
{
	if (c->owned)
		pfree(c->owned);
	c->owned = NULL;
	cursor_release_buffer(c);
}

/*
 * Keep one of our messages until its transaction ends, as decode.c has
 * classified it (see AAEvent): an event's signed text before its "sig"
 * key is closed again with a brace.
 */
void
aa_txn_add(TransactionId xid, XLogRecPtr lsn, uint64 event_txid,
		   AAMessageKind kind, uint64 number, const char *data, Size len)
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
	ev->kind = kind;
	ev->number = number;
	memcpy(ev->data, data, len);
	if (kind == AA_MSG_EVENT)
	{
		/* the event's closing brace, which its signature replaced */
		ev->data[len++] = '}';
	}
	ev->len = len;
	ev->data[len] = '\0';
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

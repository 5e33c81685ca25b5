/*-------------------------------------------------------------------------
 *
 * counters.c
 *		The message numbers that each open transaction's signatures have
 *		used, so that a signature seen in the WAL signs nothing later.
 *
 * Every message of ours names its top-level transaction and its number in
 * it (common/sign.h); the trigger numbers them 1, 2, ... in WAL order
 * across the whole transaction.  A signature can be copied by anyone who
 * reads the WAL (a REPLICATION role streams it), even from a rolled-back
 * savepoint, into a message of the same still open transaction: the copy
 * comes later in the WAL, with a number already used.  So a number is
 * accepted only if it is above every number seen for its transaction,
 * also those of subtransactions whose events were dropped.
 *
 * The record of a transaction lives until its commit or abort record (or
 * a running-xacts record says it has ended), and holds the writer's slot
 * at the transaction's first message: a writer that restarts reads that
 * message again and so knows the numbers again.
 *
 * This file must not look at the messages themselves (decode.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "writer/writer.h"

typedef struct AACounter
{
	uint64		txid;			/* hash key: the full top-level id */
	uint64		highest;		/* the highest number accepted */
	XLogRecPtr	first_lsn;		/* its first message seen */
} AACounter;

static HTAB *counters = NULL;

/* Make the table, once per worker. */
void
aa_counters_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(AACounter);
	ctl.hcxt = TopMemoryContext;
	counters = hash_create("activity_audit message numbers", 256, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Whether message number 'counter' of transaction txid, at lsn, may be
 * accepted: only if it rises above every number seen for txid so far.
 */
bool
aa_counter_accept(uint64 txid, uint64 counter, XLogRecPtr lsn)
{
	AACounter  *c;
	bool		found;

	c = hash_search(counters, &txid, HASH_ENTER, &found);
	if (!found)
	{
		c->highest = 0;
		c->first_lsn = lsn;
	}
	if (counter <= c->highest)
		return false;
	c->highest = counter;
	return true;
}

/* The transaction has ended (commit or abort record). */
void
aa_counter_forget(uint64 txid)
{
	(void) hash_search(counters, &txid, HASH_REMOVE, NULL);
}

/*
 * A running-xacts record: transactions older than its oldest running one
 * have ended, also those whose end the WAL does not show (a crash).
 */
void
aa_counters_forget_before(uint64 oldest_running)
{
	HASH_SEQ_STATUS seq;
	AACounter  *c;

	hash_seq_init(&seq, counters);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->txid < oldest_running)
			(void) hash_search(counters, &c->txid, HASH_REMOVE, NULL);
}

/*
 * The oldest WAL the records still need, for the slot: the first message
 * of the oldest open transaction, or next_lsn when there is none.
 */
XLogRecPtr
aa_counters_needed_lsn(XLogRecPtr next_lsn)
{
	HASH_SEQ_STATUS seq;
	AACounter  *c;
	XLogRecPtr	needed = next_lsn;

	hash_seq_init(&seq, counters);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->first_lsn < needed)
			needed = c->first_lsn;
	return needed;
}

/*-------------------------------------------------------------------------
 *
 * slot.c
 *		The writer's replication slot: where reading resumes when the writer
 *		starts, WAL reserved the way PostgreSQL reserves it, and the slot
 *		moved on as events are delivered.
 *
 * The slot keeps the WAL back to the oldest message not yet delivered.  At
 * start the writer works out what it still needs: the slot's restart_lsn
 * when the slot is sound; the position the slot had when it was
 * invalidated (max_slot_wal_keep_size), where PostgreSQL keeps it; else
 * (the slot missing from a restored data directory, or dropped) the
 * stream's last delivered commit.  A stream whose last line is a gap line
 * has accounted for all WAL before that line's "lsn" already.
 *
 * What is needed but gone is never skipped quietly: gap.c reports it and
 * writes a gap line, and only then is the slot put right (moved on, or
 * dropped and created again), so that a crash in between finds the loss
 * again instead of forgetting it.  A new slot reserves WAL as
 * pg_create_physical_replication_slot() does (ReplicationSlotReserveWal:
 * the redo pointer, retried while a concurrent checkpoint removes it); a
 * position before that is taken the same way, by setting it, making it
 * count, and checking that its segment is still there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "replication/slot.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "writer/writer.h"

/* The writer's replication slot. */
#define AA_SLOT_NAME		"activity_audit"

/* What the writer finds under its slot's name at start. */
typedef enum SlotCondition
{
	SLOT_SOUND,					/* it keeps WAL from its restart_lsn */
	SLOT_INVALIDATED,			/* its WAL was removed (max_slot_wal_keep_size) */
	SLOT_UNRESERVED,			/* it exists but never reserved WAL */
	SLOT_MISSING
} SlotCondition;

/*
 * A slot's condition, read under its spinlock: its restart_lsn and, once
 * invalidated, the position it had then (PostgreSQL 13 to 15 keep it in
 * invalidated_at; later versions do not, and lost_at is invalid).
 */
static SlotCondition
slot_condition(ReplicationSlot *s, XLogRecPtr *restart, XLogRecPtr *lost_at)
{
	bool		invalidated;

	SpinLockAcquire(&s->mutex);
	*restart = s->data.restart_lsn;
#if PG_VERSION_NUM >= 160000
	invalidated = s->data.invalidated != RS_INVAL_NONE;
	*lost_at = InvalidXLogRecPtr;
#else
	invalidated = XLogRecPtrIsInvalid(s->data.restart_lsn) &&
		!XLogRecPtrIsInvalid(s->data.invalidated_at);
	*lost_at = s->data.invalidated_at;
#endif
	SpinLockRelease(&s->mutex);

	if (invalidated)
		return SLOT_INVALIDATED;
	return XLogRecPtrIsInvalid(*restart) ? SLOT_UNRESERVED : SLOT_SOUND;
}

/* Look at the slot without taking it. */
static SlotCondition
inspect_slot(XLogRecPtr *restart, XLogRecPtr *lost_at)
{
	ReplicationSlot *s;
	SlotCondition cond = SLOT_MISSING;

	*restart = *lost_at = InvalidXLogRecPtr;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(AA_SLOT_NAME, false);
	if (s != NULL)
		cond = slot_condition(s, restart, lost_at);
	LWLockRelease(ReplicationSlotControlLock);
	return cond;
}

/* Take the existing slot for this process. */
static void
acquire_slot(void)
{
#if PG_VERSION_NUM >= 140000
	ReplicationSlotAcquire(AA_SLOT_NAME, false);
#else
	(void) ReplicationSlotAcquire(AA_SLOT_NAME, SAB_Block);
#endif
}

/*
 * Make the held slot keep the WAL from lsn on and save it.  Moving back
 * (to WAL older than the slot held) is safe only if that WAL is still
 * there after the slot counts, which the caller checks (wal_kept).
 */
static void
set_restart_lsn(XLogRecPtr lsn)
{
	SpinLockAcquire(&MyReplicationSlot->mutex);
	MyReplicationSlot->data.restart_lsn = lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	ReplicationSlotsComputeRequiredLSN();
	ReplicationSlotMarkDirty();
	ReplicationSlotSave();
}

/*
 * Whether the WAL from lsn on is still there now that the slot keeps it:
 * the test of ReplicationSlotReserveWal(), and the segment on disk.
 */
static bool
wal_kept(XLogRecPtr lsn)
{
	XLogSegNo	segno;

	XLByteToSeg(lsn, segno, wal_segment_size);
	return XLogGetLastRemovedSegno() < segno && aa_wal_oldest() <= lsn;
}

/*
 * Create the slot and reserve WAL as PostgreSQL does, from the redo
 * pointer; then, if lsn is valid, from lsn instead.  Returns where it
 * keeps WAL from.
 */
static XLogRecPtr
create_slot(XLogRecPtr lsn)
{
	XLogRecPtr	restart;

#if PG_VERSION_NUM >= 170000
	ReplicationSlotCreate(AA_SLOT_NAME, false, RS_PERSISTENT, false, false, false);
#elif PG_VERSION_NUM >= 140000
	ReplicationSlotCreate(AA_SLOT_NAME, false, RS_PERSISTENT, false);
#else
	ReplicationSlotCreate(AA_SLOT_NAME, false, RS_PERSISTENT);
#endif
	ReplicationSlotReserveWal();
	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (!XLogRecPtrIsInvalid(lsn))
		restart = lsn;
	set_restart_lsn(restart);
	ereport(LOG,
			(errmsg("activity_audit writer created replication slot \"%s\" at %X/%X",
					AA_SLOT_NAME, LSN_FORMAT_ARGS(restart))));
	return restart;
}

/*
 * Hold a sound slot that keeps the WAL from lsn on: take the slot and move
 * it there, or drop a slot that keeps nothing and create it anew.  false
 * when the WAL at lsn went meanwhile (a concurrent checkpoint).
 */
static bool
hold_slot_at(SlotCondition *cond, XLogRecPtr lsn)
{
	switch (*cond)
	{
		case SLOT_SOUND:
			if (MyReplicationSlot == NULL)
			{
				XLogRecPtr	restart;
				XLogRecPtr	lost_at;

				acquire_slot();
				/* a checkpoint may have invalidated it since we looked */
				*cond = slot_condition(MyReplicationSlot, &restart, &lost_at);
				if (*cond != SLOT_SOUND)
				{
					ReplicationSlotRelease();
					return false;
				}
			}
			set_restart_lsn(lsn);
			break;
		case SLOT_INVALIDATED:
		case SLOT_UNRESERVED:
			ReplicationSlotDrop(AA_SLOT_NAME, false);
			ereport(LOG,
					(errmsg("activity_audit writer dropped replication slot \"%s\", which kept no WAL",
							AA_SLOT_NAME)));
			/* FALLTHROUGH */
		case SLOT_MISSING:
			(void) create_slot(lsn);
			break;
	}
	*cond = SLOT_SOUND;
	return wal_kept(lsn);
}

/*
 * At start: work out where reading must resume, record as a gap whatever
 * WAL is needed but gone, and hold a slot that keeps the WAL from there.
 * stream: the position the stream had when opened (aa_deliver_open).
 *
 * "needed" is exact when it comes from the slot or from a gap line; from
 * the stream's last commit alone it is a guess (a transaction open at that
 * commit began before it), so reading then starts from the oldest WAL
 * there is, which covers as much of such transactions as still exists.
 */
XLogRecPtr
aa_slot_start(const AAStreamPos *stream)
{
	XLogRecPtr	restart;
	XLogRecPtr	lost_at;
	XLogRecPtr	needed;
	bool		exact = true;
	const char *reason;
	SlotCondition cond = inspect_slot(&restart, &lost_at);

	if (cond == SLOT_SOUND)
	{
		needed = restart;
		reason = "wal_removed";
	}
	else if (cond == SLOT_INVALIDATED && !XLogRecPtrIsInvalid(lost_at))
	{
		needed = lost_at;
		reason = "slot_invalidated";
	}
	else if (cond != SLOT_INVALIDATED && stream->seq == 0 && !stream->after_gap)
	{
		/* a new stream: nothing was delivered, so nothing can be missing */
		if (cond == SLOT_UNRESERVED)
			ReplicationSlotDrop(AA_SLOT_NAME, false);
		return create_slot(InvalidXLogRecPtr);
	}
	else
	{
		needed = stream->commit_lsn;
		exact = false;
		reason = cond == SLOT_INVALIDATED ? "slot_invalidated" : "slot_missing";
	}
	if (stream->after_gap && stream->commit_lsn >= needed)
	{
		needed = stream->commit_lsn;
		exact = true;
	}

	for (;;)
	{
		XLogRecPtr	oldest = aa_wal_oldest();
		XLogRecPtr	from;

		if (needed < oldest)
		{
			aa_gap_record(needed, oldest, reason);
			needed = oldest;
			exact = true;
		}
		from = exact ? needed : oldest;
		if (hold_slot_at(&cond, from))
			return from;
		/* the WAL at 'from' went while the slot was being put right */
		needed = from;
		exact = true;
		reason = cond == SLOT_INVALIDATED ? "slot_invalidated" : "wal_removed";
	}
}

/* Move the slot forward, keeping the WAL from 'needed' on. */
void
aa_slot_advance(XLogRecPtr needed)
{
	bool		changed = false;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	if (needed > MyReplicationSlot->data.restart_lsn)
	{
		MyReplicationSlot->data.restart_lsn = needed;
		changed = true;
	}
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (changed)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		ReplicationSlotsComputeRequiredLSN();
	}
}

/*
 * Where the writer's slot keeps WAL from (invalid: no sound slot), for
 * writer_status() and the retention warning; any process may ask.
 */
XLogRecPtr
aa_slot_restart_lsn(void)
{
	XLogRecPtr	restart;
	XLogRecPtr	lost_at;

	if (inspect_slot(&restart, &lost_at) != SLOT_SOUND)
		return InvalidXLogRecPtr;
	return restart;
}

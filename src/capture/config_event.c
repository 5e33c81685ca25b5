/*-------------------------------------------------------------------------
 *
 * config_event.c
 *		audit.config events: auditing switched off is itself in the stream
 *		(SPEC section 9).
 *
 * A superuser can set audit.enabled = off, and the session's writes to
 * tracked tables then produce no events.  Silence would make that
 * invisible; instead the first write of a transaction to each tracked
 * table with auditing off leaves one AUDIT_SUPPRESSED event (who, which
 * table, that its changes are not in the stream), signed and transactional
 * like every event: a rolled-back savepoint takes its event back, and the
 * next write writes it again.
 *
 * The event names the table by its audit trigger's model (read leniently:
 * aa_relinfo_names), never failing on the trigger's configuration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "activity_audit.h"
#include "capture/capture.h"

/* The tables whose writes were suppressed in this transaction (per backend). */
typedef struct Suppressed
{
	Oid			relid;
	SubTransactionId subxid;	/* where the event was written */
} Suppressed;

static List *suppressed = NIL;	/* of Suppressed *, in TopTransactionContext */
static bool callbacks_registered = false;

/* Forget suppressions made in an aborted subtransaction; pass them up on commit. */
static void
suppressed_subxact(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	foreach(lc, suppressed)
	{
		Suppressed *s = lfirst(lc);

		if (s->subxid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			s->subxid = parentSubid;
		else
			suppressed = foreach_delete_current(suppressed, lc);
	}
}

/* The list lives in the transaction's memory: forget it at its end. */
static void
suppressed_xact(XactEvent event, void *arg)
{
	suppressed = NIL;
}

/*
 * A write to a tracked table while audit.enabled is off (capture.c): the
 * first of the transaction (that is not rolled back) on each table leaves
 * an AUDIT_SUPPRESSED event, so that the stream says its changes are not
 * in it.
 */
void
aa_note_suppressed(Relation rel, Trigger *trigger)
{
	ListCell   *lc;
	Suppressed *s;
	MemoryContext old;
	AARelInfo  *ri;

	foreach(lc, suppressed)
		if (((Suppressed *) lfirst(lc))->relid == RelationGetRelid(rel))
			return;
	if (!callbacks_registered)
	{
		RegisterXactCallback(suppressed_xact, NULL);
		RegisterSubXactCallback(suppressed_subxact, NULL);
		callbacks_registered = true;
	}
	ri = aa_relinfo_names(rel, trigger);
	aa_emit_config_event(ri, "AUDIT_SUPPRESSED",
						 "{\"setting\":\"audit.enabled\",\"value\":\"off\"}");
	old = MemoryContextSwitchTo(TopTransactionContext);
	s = palloc(sizeof(Suppressed));
	s->relid = RelationGetRelid(rel);
	s->subxid = GetCurrentSubTransactionId();
	suppressed = lappend(suppressed, s);
	MemoryContextSwitchTo(old);
}


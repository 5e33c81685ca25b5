/*-------------------------------------------------------------------------
 *
 * capture.c
 *		The audit trigger, activity_audit.capture().
 *
 * Fired AFTER each row change (and after each TRUNCATE) of a tracked
 * table, it decides whether the change is audited, finds the relation's
 * cache entry and has event.c write the event.  It is the only entry point
 * on the hot path, so it owns the per-row memory context: everything a row
 * allocates is released when the row is done, and a transaction of a
 * million rows uses no more memory than one of a single row.
 *
 * This file must not format JSON.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "guc.h"

PG_FUNCTION_INFO_V1(activity_audit_capture);

static MemoryContext row_cxt = NULL;
static bool row_cxt_busy = false;

/*
 * Refuse firings that could not produce a faithful event: anything but an
 * AFTER trigger (a BEFORE trigger sees a row that later triggers may still
 * change) and statement-level firings other than TRUNCATE (no rows).
 */
static void
check_firing(TriggerData *td)
{
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be an AFTER trigger to call activity_audit.capture()",
						td->tg_trigger->tgname,
						RelationGetRelationName(td->tg_relation)),
				 errhint("Use activity_audit.track(), which creates the triggers correctly.")));
	if (!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) &&
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be FOR EACH ROW to call activity_audit.capture() for INSERT, UPDATE or DELETE",
						td->tg_trigger->tgname,
						RelationGetRelationName(td->tg_relation)),
				 errhint("Use activity_audit.track(), which creates the triggers correctly.")));
}

/* Build and write the event of this firing. */
static void
capture_one(TriggerData *td, bool nested)
{
	Relation	rel = td->tg_relation;
	AARelInfo  *ri = aa_get_relinfo(rel, td->tg_trigger, !nested);

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		aa_emit_truncate_event(ri, nested);
	else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		aa_emit_row_event(ri, AA_EVENT_CREATE, nested, NULL, td->tg_trigslot);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		aa_emit_row_event(ri, AA_EVENT_UPDATE, nested,
						  td->tg_trigslot, td->tg_newslot);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		aa_emit_row_event(ri, AA_EVENT_DELETE, nested, td->tg_trigslot, NULL);
}

/*
 * The trigger function.  Fails closed: if the library was not preloaded,
 * the configuration is broken or the event cannot be built, the error
 * aborts the change rather than letting it through unaudited.
 */
Datum
activity_audit_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	MemoryContext cxt;
	MemoryContext old;
	bool		shared;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_audit.capture() can only be called as a trigger"),
				 errhint("Use activity_audit.track() to audit a table.")));
	td = (TriggerData *) fcinfo->context;
	aa_require_auditable();
	check_firing(td);

	if (!aa_enabled)
	{
		/* not silence: the stream says the table's changes are not in it */
		aa_note_suppressed(td->tg_relation, td->tg_trigger);
		return PointerGetDatum(NULL);
	}

	/*
	 * TRUNCATE of a partitioned table reaches each partition's own TRUNCATE
	 * trigger too; those report it, with the rows' real table.
	 */
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) &&
		td->tg_relation->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		return PointerGetDatum(NULL);

	if (row_cxt == NULL)
		row_cxt = AllocSetContextCreate(TopMemoryContext,
										"activity_audit row",
										ALLOCSET_DEFAULT_SIZES);

	/* a nested firing (from inside a value's cast function) gets its own */
	shared = !row_cxt_busy;
	if (shared)
	{
		cxt = row_cxt;
		row_cxt_busy = true;
	}
	else
		cxt = AllocSetContextCreate(CurrentMemoryContext,
									"activity_audit nested row",
									ALLOCSET_SMALL_SIZES);

	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		capture_one(td, !shared);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(old);
		if (shared)
		{
			MemoryContextReset(row_cxt);
			row_cxt_busy = false;
		}
		else
			MemoryContextDelete(cxt);
	}
	PG_END_TRY();

	return PointerGetDatum(NULL);
}

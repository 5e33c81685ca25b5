/*-------------------------------------------------------------------------
 *
 * activity_audit.c
 *		Module entry point: library load, preload check, settings.
 *
 * The library must be in shared_preload_libraries: that is where the
 * settings are defined for every backend, the event signing key is loaded
 * and the writer is registered.  Loaded any other way (CREATE EXTENSION, LOAD) it
 * refuses to audit, so a write that cannot be audited properly fails instead
 * of happening unaudited.  So it does with wal_level = minimal, where the
 * writer can keep no replication slot and the events could never be
 * delivered.
 *
 * This file owns no event logic.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/sha256.h"
#include "common/sign.h"
#include "guc.h"
#include "writer/writer.h"

PG_MODULE_MAGIC;

/* true when loaded through shared_preload_libraries (inherited by fork) */
bool		aa_preloaded = false;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(activity_audit_check_preload);

/*
 * Library load.  Remember whether this is the preload; define the audit.*
 * settings either way so that SET audit.user_id works in any case and
 * reports the real problem (the missing preload) at the first audited write.
 */
void
_PG_init(void)
{
	aa_preloaded = process_shared_preload_libraries_in_progress;

	aa_define_gucs();
	aa_install_utility_hook();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("audit");
#else
	EmitWarningsOnPlaceholders("audit");
#endif

	/* a build whose SHA-256 fails its self-test must not write or check a chain */
	if (aa_sha256_choose(1) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("SHA-256 self-test failed"),
				 errhint("The activity_audit library is miscompiled; rebuild it.")));

	if (aa_preloaded)
	{
		aa_slot_check_startup();
		aa_load_event_key();
		aa_register_writer();
	}
}

/*
 * Fail closed, with the fix in the hint, unless the library was preloaded.
 * Called by CREATE EXTENSION, track() and every trigger firing.
 */
void
aa_require_preload(void)
{
	if (!aa_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("activity_audit must be loaded via shared_preload_libraries"),
				 errdetail("Changes to audited tables are refused while they cannot be audited."),
				 errhint("Add 'activity_audit' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Fail closed, naming wal_level, unless the server can audit: preloaded,
 * and with WAL the writer can follow.  With wal_level = minimal the writer
 * cannot keep a replication slot (PostgreSQL would not start again with
 * one), so an event written now would never be delivered.  Called by
 * CREATE EXTENSION, track(), log_event() and every trigger firing; only a
 * comparison of a global, fit for the trigger's hot path.
 */
void
aa_require_auditable(void)
{
	aa_require_preload();
	if (wal_level < WAL_LEVEL_REPLICA)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("activity_audit cannot audit with wal_level = minimal"),
				 errdetail("The writer delivers the events from the WAL through a replication slot, which wal_level = minimal does not allow; changes to audited tables are refused meanwhile."),
				 errhint("Set wal_level = logical (or replica) in postgresql.conf and restart the server.")));
}

/*
 * SQL-callable check, run by the extension script and by track() so that
 * CREATE EXTENSION and track() themselves fail on a server that cannot
 * audit (aa_require_auditable).
 */
Datum
activity_audit_check_preload(PG_FUNCTION_ARGS)
{
	aa_require_auditable();
	PG_RETURN_VOID();
}

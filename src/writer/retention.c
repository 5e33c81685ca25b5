/*-------------------------------------------------------------------------
 *
 * retention.c
 *		What holds the WAL: the bytes the writer's replication slot keeps,
 *		and a WARNING when they pass audit.retained_warning.
 *
 * The slot keeps the WAL from the first event of the oldest open
 * transaction with events on (txnbuf.c), however old it is.  A transaction
 * that is prepared and then forgotten (PREPARE TRANSACTION without COMMIT
 * PREPARED or ROLLBACK PREPARED) so holds WAL without bound, while the
 * writer's lag stays small: everything committed is delivered.  The
 * WARNING names that transaction, so that the log says what to do.
 *
 * This file must not move the slot; it only measures what it keeps.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#if PG_VERSION_NUM >= 150000
#include "access/xlogrecovery.h"
#endif
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "writer/writer.h"

/*
 * The WAL the writer's slot keeps, in bytes: from its restart_lsn to the
 * insert position (on a standby: the replay position, which is where the
 * writer reads up to).  -1 when there is no sound slot.
 */
int64
aa_retained_bytes(void)
{
	XLogRecPtr	restart = aa_slot_restart_lsn();
	XLogRecPtr	end;

	if (XLogRecPtrIsInvalid(restart))
		return -1;
	end = RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : GetXLogInsertRecPtr();
	return end > restart ? (int64) (end - restart) : 0;
}

/* A byte count as pg_size_pretty() prints it. */
static char *
pretty_size(int64 bytes)
{
	return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(pg_size_pretty,
															  Int64GetDatum(bytes))));
}

/*
 * Called by the worker after it moves its slot, and while a sink fails: say
 * once, when the WAL the slot keeps grows past audit.retained_warning, what
 * holds it (oldest: the open transaction with events whose first event is
 * oldest, or NULL: what the writer has not delivered); and
 * once when it is below the limit again, so that the next crossing is
 * reported too.  Not on every loop: the state is in shared memory, so a
 * restarted worker does not repeat it either.
 */
void
aa_retention_check(const AATxn *oldest)
{
	int64		retained;
	int64		limit = (int64) aa_retained_warning * 1024;
	bool		warned = aa_status_retained_warned();

	if (aa_retained_warning == 0)
	{
		if (warned)
			aa_status_set_retained_warned(false);
		return;
	}
	retained = aa_retained_bytes();
	if (retained < 0)
		return;

	if (retained > limit && !warned)
	{
		char	   *held;

		if (oldest == NULL)
			held = pstrdup("No open transaction with audit events holds it: the writer has not delivered it yet (see writer_status().last_error and lag_bytes).");
		else if (oldest->gid)
			held = psprintf("The oldest open transaction with audit events is " UINT64_FORMAT ", prepared as \"%s\" at %s; it holds the WAL from %X/%X on until COMMIT PREPARED or ROLLBACK PREPARED.",
							oldest->txid, oldest->gid,
							timestamptz_to_str(oldest->prepared_at),
							LSN_FORMAT_ARGS(oldest->first_lsn));
		else
			held = psprintf("The oldest open transaction with audit events is " UINT64_FORMAT "; it holds the WAL from %X/%X on until it ends.",
							oldest->txid, LSN_FORMAT_ARGS(oldest->first_lsn));
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("activity_audit writer's replication slot keeps %s of WAL, more than audit.retained_warning (%s)",
						pretty_size(retained), pretty_size(limit)),
				 errdetail_internal("%s", held),
				 errhint("writer_status() shows oldest_xact, oldest_xact_gid and oldest_xact_age.  Finish a prepared transaction nobody will finish with COMMIT PREPARED or ROLLBACK PREPARED (pg_prepared_xacts lists them); end a long open transaction.")));
		aa_status_set_retained_warned(true);
	}
	else if (retained <= limit && warned)
	{
		ereport(LOG,
				(errmsg("activity_audit writer's replication slot keeps %s of WAL, no more than audit.retained_warning (%s) again",
						pretty_size(retained), pretty_size(limit))));
		aa_status_set_retained_warned(false);
	}
}

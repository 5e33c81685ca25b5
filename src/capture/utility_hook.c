/*-------------------------------------------------------------------------
 *
 * utility_hook.c
 *		The library's ProcessUtility hook: keeps the audit triggers of
 *		partitions in step with partition DDL.
 *
 * PostgreSQL clones the row trigger of a tracked partitioned table into
 * every partition, present and future, by itself; it does not do so for the
 * TRUNCATE statement trigger.  So after CREATE TABLE ... PARTITION OF and
 * ATTACH PARTITION the new leaves must get the TRUNCATE trigger of their
 * tracked ancestor, and after DETACH PARTITION the detached tree must lose
 * the TRUNCATE triggers it had only as a partition.  And before ATTACH
 * PARTITION to an audited table, a table tracked on its own must give up
 * its own audit triggers: PostgreSQL refuses to clone the parent's row
 * trigger over one of the same name, and with both every change would be
 * audited twice.
 *
 * This is done here rather than by an event trigger.  An event trigger
 * runs as the role that ran the DDL, which has no USAGE on the
 * activity_audit schema, so it made partition DDL of ordinary roles fail in
 * every database with the extension; here the work is done as the
 * extension's owner, and only on the partition tree of a table the role
 * owns.  An event trigger also sees neither the partition a DETACH removed
 * nor an ATTACH before it happens, where a hook has the parse tree on both
 * sides of the statement; the DDL that SPEC section 9 wants recorded
 * (DISABLE TRIGGER, DROP TRIGGER, renames, ATTACH and DETACH) passes here
 * too, and the library can write its events the way the trigger does.
 *
 * The work itself is done by functions of the extension script,
 * _partition_attaching(), _sync_partitions() and _partition_detached(), on
 * the trees the statement names.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"

#include "activity_audit.h"
#include "capture/capture.h"

/* The partition DDL the hook acts on. */
typedef enum AAPartitionDDL
{
	AA_PDDL_NONE,
	AA_PDDL_CREATE,				/* CREATE TABLE ... PARTITION OF */
	AA_PDDL_ATTACH,				/* ALTER TABLE ... ATTACH PARTITION */
	AA_PDDL_DETACH				/* ... DETACH PARTITION [CONCURRENTLY|FINALIZE] */
} AAPartitionDDL;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

#if PG_VERSION_NUM >= 160000
#define aa_owns_relation(relid) \
	object_ownercheck(RelationRelationId, (relid), GetUserId())
#else
#define aa_owns_relation(relid) pg_class_ownercheck((relid), GetUserId())
#endif

/*
 * Which partition DDL a statement is, with the partitioned table and the
 * partition it names.  Anything else is AA_PDDL_NONE and passes untouched.
 */
static AAPartitionDDL
classify(Node *parsetree, RangeVar **parent, RangeVar **part)
{
	if (IsA(parsetree, CreateStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;

		if (stmt->partbound == NULL || list_length(stmt->inhRelations) != 1)
			return AA_PDDL_NONE;
		*parent = linitial_node(RangeVar, stmt->inhRelations);
		*part = stmt->relation;
		return AA_PDDL_CREATE;
	}
	if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		AlterTableCmd *cmd;

#if PG_VERSION_NUM >= 140000
		if (stmt->objtype != OBJECT_TABLE)
#else
		if (stmt->relkind != OBJECT_TABLE)
#endif
			return AA_PDDL_NONE;
		/* the grammar gives ATTACH and DETACH a statement of their own */
		if (list_length(stmt->cmds) != 1)
			return AA_PDDL_NONE;
		cmd = linitial_node(AlterTableCmd, stmt->cmds);
		*parent = stmt->relation;
		switch (cmd->subtype)
		{
			case AT_AttachPartition:
				*part = ((PartitionCmd *) cmd->def)->name;
				return AA_PDDL_ATTACH;
			case AT_DetachPartition:
#if PG_VERSION_NUM >= 140000
			case AT_DetachPartitionFinalize:
#endif
				*part = ((PartitionCmd *) cmd->def)->name;
				return AA_PDDL_DETACH;
			default:
				break;
		}
	}
	return AA_PDDL_NONE;
}

/*
 * The owner of the extension in this database, or InvalidOid if it is not
 * installed here: the library is preloaded for the whole cluster, the
 * extension is per database.
 */
static Oid
extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("activity_audit"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * The table a name in the statement refers to, if the user running it owns
 * it, else InvalidOid.  PostgreSQL requires ownership of the partitioned
 * table for every partition DDL, so a statement on a table the user does
 * not own has failed or done nothing (IF NOT EXISTS), and the hook must do
 * nothing either.
 */
static Oid
owned_relation(RangeVar *rv)
{
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);

	if (!OidIsValid(relid) || !aa_owns_relation(relid))
		return InvalidOid;
	return relid;
}

/*
 * Run activity_audit.<func>(rels...) as the extension's owner.  The user
 * running the DDL has no USAGE on the schema, and need not own every table
 * of the tree (a superuser may have built it); the function only touches
 * the trees of rels.  The user switch is undone by transaction abort if the
 * function fails.
 */
static void
call_partition_function(Oid owner, const char *func, int nrels, Oid *rels)
{
	Oid			save_userid;
	int			save_sec_context;
	bool		pushed = false;
	Oid			argtypes[2] = {REGCLASSOID, REGCLASSOID};
	Datum		values[2];
	char	   *sql;
	int			ret;
	int			i;

	Assert(nrels == 1 || nrels == 2);
	for (i = 0; i < nrels; i++)
		values[i] = ObjectIdGetDatum(rels[i]);
	sql = psprintf("SELECT activity_audit.%s($1%s)", func,
				   nrels == 2 ? ", $2" : "");

	/* the DDL's catalog changes must be visible to the function */
	CommandCounterIncrement();
	if (!ActiveSnapshotSet())
	{
		/* DETACH ... CONCURRENTLY ends in a transaction of its own */
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(sql, nrels, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "activity_audit.%s() failed: %s", func,
			 SPI_result_code_string(ret));
	SPI_finish();

	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (pushed)
		PopActiveSnapshot();
	pfree(sql);
}

/*
 * Before ATTACH PARTITION: a table tracked on its own gives up its own
 * configuration if the partitioned table is audited (see
 * _partition_attaching()).  Only when the user owns both tables, as ATTACH
 * is about to require; the locks are those ATTACH takes, in its order, so
 * that neither table can be tracked, untracked or renamed between this and
 * the attach.
 */
static void
before_attach(Oid owner, RangeVar *parent_rv, RangeVar *part_rv)
{
	Oid			rels[2];

	rels[0] = owned_relation(parent_rv);
	rels[1] = owned_relation(part_rv);
	if (!OidIsValid(rels[0]) || !OidIsValid(rels[1]))
		return;
	LockRelationOid(rels[0], ShareUpdateExclusiveLock);
	LockRelationOid(rels[1], AccessExclusiveLock);
	call_partition_function(owner, "_partition_attaching", 2, rels);
}

/*
 * The hook.  For partition DDL in a database with the extension, prepares
 * an ATTACH, runs the statement, then brings the audit triggers of the
 * changed tree in step; any other statement passes untouched.
 */
static void
aa_process_utility(PlannedStmt *pstmt, const char *queryString,
#if PG_VERSION_NUM >= 140000
				   bool readOnlyTree,
#endif
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest,
				   QueryCompletion *qc)
{
	RangeVar   *parent_rv = NULL;
	RangeVar   *part_rv = NULL;
	AAPartitionDDL kind;
	Oid			owner = InvalidOid;
	Oid			parent;

	/*
	 * pg_upgrade restores the triggers as they were, and the extension's
	 * functions may not be there yet when it restores the tables.
	 */
	kind = classify(pstmt->utilityStmt, &parent_rv, &part_rv);
	if (kind != AA_PDDL_NONE && !IsBinaryUpgrade)
		owner = extension_owner();
	if (kind == AA_PDDL_ATTACH && OidIsValid(owner))
		before_attach(owner, parent_rv, part_rv);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString,
#if PG_VERSION_NUM >= 140000
							readOnlyTree,
#endif
							context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString,
#if PG_VERSION_NUM >= 140000
								readOnlyTree,
#endif
								context, params, queryEnv, dest, qc);

	if (!OidIsValid(owner))
		return;
	parent = owned_relation(parent_rv);
	if (!OidIsValid(parent))
		return;
	if (kind == AA_PDDL_DETACH)
	{
		Oid			part = RangeVarGetRelid(part_rv, NoLock, true);

		if (OidIsValid(part))
			call_partition_function(owner, "_partition_detached", 1, &part);
	}
	else
		call_partition_function(owner, "_sync_partitions", 1, &parent);
}

/*
 * Install the hook; called from _PG_init, in whatever way the library is
 * loaded, so that partitions stay in step in every session that has it.
 */
void
aa_install_utility_hook(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = aa_process_utility;
}

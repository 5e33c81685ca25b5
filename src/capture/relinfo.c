/*-------------------------------------------------------------------------
 *
 * relinfo.c
 *		Per-trigger cache of what the audit trigger needs to know about a
 *		relation: its columns and how to serialize them, its primary key,
 *		its model name and the exclude/redact/no-op settings.
 *
 * Everything that needs the catalogs is done here, once, when a trigger
 * first fires after the relation (or a type, schema) changed; the per-row
 * path in event.c reads only this cache.  Entries are keyed by trigger OID,
 * because a trigger's arguments are its configuration, and are marked
 * invalid by relcache and syscache invalidation callbacks.  Callbacks only
 * mark; the rebuild happens at the next firing, when nothing is using the
 * old entry.  A build during which an invalidation arrives starts over.
 *
 * The configuration is the trigger's single argument, a JSON object:
 *	 {"model": "Patient", "exclude": ["ssn"], "redact": ["email"],
 *	  "log_noop_updates": false}
 * with every key optional.  activity_audit.track() writes it; users who
 * create the trigger by hand may write it themselves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/json_out.h"

static HTAB *relinfo_hash = NULL;
static MemoryContext relinfo_cxt = NULL;

/* The entry of the last firing: a statement's rows all use the same one. */
static AARelInfo *last_entry = NULL;

/* Configuration parsed from the trigger argument. */
typedef struct AAConfig
{
	char	   *model;
	List	   *exclude;		/* of char * */
	List	   *redact;			/* of char * */
	bool		log_noop_updates;
} AAConfig;

/*
 * Mark entries of one relation (or all, for InvalidOid) for rebuild.  An
 * entry being built may already have read what this invalidates, and which
 * types it depends on is not known until its build ends, so any
 * invalidation at all makes that build start over (as relcache.c's
 * in-progress list does for relation descriptors).
 */
static void
invalidate_entries(Oid relid)
{
	HASH_SEQ_STATUS status;
	AARelInfo  *entry;

	if (relinfo_hash == NULL)
		return;
	hash_seq_init(&status, relinfo_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->building)
			entry->build_stale = true;
		if (!entry->valid)
			continue;			/* its fields may be unset */
		if (!OidIsValid(relid) || entry->relid == relid ||
			list_member_oid(entry->type_relids, relid))
			entry->valid = false;
	}
}

/*
 * Relcache callback: the relation's columns, triggers or keys may differ,
 * or, for the relation of a composite type, the attributes of that type.
 */
static void
relcache_callback(Datum arg, Oid relid)
{
	invalidate_entries(relid);
}

/*
 * Syscache callback for types and schemas: a composite type's attributes or
 * a schema's name are baked into entries, and such changes are rare enough
 * to simply rebuild everything.
 */
static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	invalidate_entries(InvalidOid);
}

/* Create the hash table and register the callbacks, once per backend. */
static void
init_relinfo_hash(void)
{
	HASHCTL		ctl;

	relinfo_cxt = AllocSetContextCreate(CacheMemoryContext,
										"activity_audit relation cache",
										ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(AARelInfo);
	ctl.hcxt = relinfo_cxt;
	relinfo_hash = hash_create("activity_audit relation cache", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, syscache_callback, (Datum) 0);
}

/* Report a malformed trigger argument, naming the trigger and table. */
static void
config_error(Relation rel, Trigger *trigger, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid configuration in trigger \"%s\" on table \"%s\"",
					trigger->tgname, RelationGetRelationName(rel)),
			 errdetail_internal("%s", detail),
			 errhint("Use activity_audit.track() to configure auditing, or pass one JSON object such as '{\"model\": \"Patient\", \"exclude\": [\"ssn\"], \"redact\": [\"email\"]}' to activity_audit.capture().")));
}

/* A JSON array of column names from the configuration, as a List. */
static List *
config_name_list(Relation rel, Trigger *trigger, JsonbValue *v,
				 const char *key)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	List	   *names = NIL;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		config_error(rel, trigger,
					 psprintf("\"%s\" must be an array of column names.", key));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (elem.type != jbvString)
			config_error(rel, trigger,
						 psprintf("\"%s\" must contain only column names (strings).", key));
		names = lappend(names, pnstrdup(elem.val.string.val,
										elem.val.string.len));
	}
	return names;
}

/*
 * Parse the trigger's argument.  Unknown keys are errors rather than being
 * ignored: a misspelt "redcat" must not silently leave a column in clear.
 */
static void
parse_config(Relation rel, Trigger *trigger, AAConfig *cfg)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *arg;

	memset(cfg, 0, sizeof(AAConfig));
	if (trigger->tgnargs == 0)
		return;
	if (trigger->tgnargs > 1)
		config_error(rel, trigger, "activity_audit.capture() takes at most one argument.");

	arg = trigger->tgargs[0];
	if (!aa_json_valid(arg, NULL))
		config_error(rel, trigger, "The argument is not valid JSON.");
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(arg)));
	if (!JB_ROOT_IS_OBJECT(jb))
		config_error(rel, trigger, "The argument must be a JSON object.");

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "model") == 0)
		{
			if (v.type == jbvNull)
				continue;
			if (v.type != jbvString || v.val.string.len == 0)
				config_error(rel, trigger, "\"model\" must be a non-empty string.");
			cfg->model = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (strcmp(key, "exclude") == 0)
			cfg->exclude = config_name_list(rel, trigger, &v, key);
		else if (strcmp(key, "redact") == 0)
			cfg->redact = config_name_list(rel, trigger, &v, key);
		else if (strcmp(key, "log_noop_updates") == 0)
		{
			if (v.type != jbvBool)
				config_error(rel, trigger, "\"log_noop_updates\" must be true or false.");
			cfg->log_noop_updates = v.val.boolean;
		}
		else
			config_error(rel, trigger,
						 psprintf("Unknown key \"%s\"; the keys are model, exclude, redact and log_noop_updates.", key));
	}
}

/*
 * Flag the columns named in an exclude or redact list.  A name that matches
 * no column fails the write: the list may have been written for a column
 * since renamed, and auditing a column the user meant to hide would leak it.
 */
static void
mark_columns(Relation rel, AARelInfo *ri, List *names, bool redact)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		int			i;
		bool		found = false;

		for (i = 0; i < ri->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			{
				if (redact)
					ri->cols[i].redacted = true;
				else
					ri->cols[i].excluded = true;
				found = true;
				break;
			}
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" listed in %s of the audit configuration of table \"%s\" does not exist",
							name, redact ? "redact" : "exclude",
							RelationGetRelationName(rel)),
					 errdetail("The write is refused because it cannot be audited as configured."),
					 errhint("Run activity_audit.track() again with the table's current column names.")));
	}
}

/*
 * Primary key columns, in key order.  A partition attached with only a
 * unique index has no primary key of its own, yet its rows are identified
 * by the partitioned table's key: use that, matching columns by name since
 * a partition's column numbers may differ from its root's.
 */
static void
load_primary_key(Relation rel, AARelInfo *ri)
{
	Relation	keyrel = rel;
	Oid			pkoid = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	int			i;

	ri->npk = 0;
	ri->pkatts = NULL;
	if (!OidIsValid(pkoid) && rel->rd_rel->relispartition)
	{
		List	   *ancestors = get_partition_ancestors(RelationGetRelid(rel));

		keyrel = relation_open(llast_oid(ancestors), AccessShareLock);
		pkoid = RelationGetPrimaryKeyIndex(keyrel);
	}
	if (OidIsValid(pkoid))
	{
		idx = index_open(pkoid, AccessShareLock);
		ri->npk = idx->rd_index->indnkeyatts;
		ri->pkatts = palloc(sizeof(AttrNumber) * ri->npk);
		for (i = 0; i < ri->npk; i++)
		{
			AttrNumber	attnum = idx->rd_index->indkey.values[i];

			if (keyrel != rel)
				attnum = get_attnum(RelationGetRelid(rel),
									get_attname(RelationGetRelid(keyrel), attnum, false));
			ri->pkatts[i] = attnum;
		}
		index_close(idx, AccessShareLock);
	}
	if (keyrel != rel)
		relation_close(keyrel, AccessShareLock);
}

/* A quoted JSON field "key":"value" with the value escaped. */
static void
append_field(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, "\"%s\":", key);
	aa_json_string(buf, value, strlen(value));
}

/*
 * The names an event shows, in the current memory context: the model
 * (JSON-escaped) and its "model" key, and the "schema" and "table" keys.
 * The same for row events (build_entry) and audit.config events
 * (aa_relinfo_names).
 */
static void
set_names(AARelInfo *ri, Relation rel, const char *model)
{
	StringInfoData buf;

	initStringInfo(&buf);
	aa_json_string_body(&buf, model, strlen(model));
	ri->model = buf.data;
	ri->model_len = buf.len;

	initStringInfo(&buf);
	appendStringInfo(&buf, "\"model\":\"%s\"", ri->model);
	ri->model_field = buf.data;
	ri->model_field_len = buf.len;

	initStringInfo(&buf);
	append_field(&buf, "schema", get_namespace_name(RelationGetNamespace(rel)));
	appendStringInfoChar(&buf, ',');
	/* the form history() pre-filters lines on (stream_format.h) */
	append_field(&buf, "table", RelationGetRelationName(rel));
	ri->where_fields = buf.data;
	ri->where_fields_len = buf.len;
}

/*
 * Build a fresh entry.  Work happens in a context under the caller's, so an
 * error part way leaves nothing behind; only a finished entry is moved under
 * the long-lived cache context.
 */
static void
build_entry(AARelInfo *ri, Relation rel, Trigger *trigger)
{
	MemoryContext mcxt;
	MemoryContext old;
	TupleDesc	desc = RelationGetDescr(rel);
	AAConfig	cfg;
	StringInfoData buf;
	int			i;

	mcxt = AllocSetContextCreate(CurrentMemoryContext,
								 "activity_audit relation",
								 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(mcxt);

	parse_config(rel, trigger, &cfg);

	ri->relid = RelationGetRelid(rel);
	ri->natts = desc->natts;
	ri->cols = palloc0(sizeof(AAColumn) * desc->natts);
	ri->type_relids = NIL;
	ri->log_noop_updates = cfg.log_noop_updates;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		AAColumn   *col = &ri->cols[i];
		Oid			outfunc;
		bool		isvarlena;

		col->dropped = att->attisdropped;
		if (col->dropped)
			continue;
		initStringInfo(&buf);
		aa_json_string(&buf, NameStr(att->attname), strlen(NameStr(att->attname)));
		appendStringInfoChar(&buf, ':');
		col->key = buf.data;
		col->keylen = buf.len;
		col->typlen = att->attlen;
		col->typbyval = att->attbyval;
		getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &col->typoutput, mcxt);
		aa_value_out_init(&col->vo, att->atttypid, mcxt);
		ri->type_relids = aa_value_out_composites(&col->vo, ri->type_relids);
	}
	mark_columns(rel, ri, cfg.exclude, false);
	mark_columns(rel, ri, cfg.redact, true);
	load_primary_key(rel, ri);

	set_names(ri, rel, cfg.model ? cfg.model : RelationGetRelationName(rel));
	ri->hdr_txid = 0;
	ri->hdr_appname = NULL;

	MemoryContextSwitchTo(old);
	MemoryContextSetParent(mcxt, relinfo_cxt);
	ri->mcxt = mcxt;
	ri->valid = true;
}

/*
 * The names alone of a table with an audit trigger, for an audit.config
 * event (config_event.c): model, schema and table, in a fresh AARelInfo in
 * the current memory context.  Unlike aa_get_relinfo() it never fails on
 * the trigger's configuration -- DDL on a table whose audit trigger is
 * misconfigured must still work, and still leave its event -- so a model
 * it cannot read is the table's name.
 */
AARelInfo *
aa_relinfo_names(Relation rel, Trigger *trigger)
{
	AARelInfo  *ri = palloc0(sizeof(AARelInfo));
	const char *model = RelationGetRelationName(rel);

	if (trigger->tgnargs == 1 && aa_json_valid(trigger->tgargs[0], NULL))
	{
		Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														CStringGetDatum(trigger->tgargs[0])));
		JsonbValue *v = JB_ROOT_IS_OBJECT(jb) ?
			getKeyJsonValueFromContainer(&jb->root, "model", 5, NULL) : NULL;

		if (v && v->type == jbvString && v->val.string.len > 0)
			model = pnstrdup(v->val.string.val, v->val.string.len);
	}
	ri->relid = RelationGetRelid(rel);
	set_names(ri, rel, model);
	return ri;
}

/*
 * Free the entries that were invalidated, so that a long session dropping
 * and creating tracked tables or triggers does not accumulate dead ones.
 * Runs only when some entry is being rebuilt, which is when callbacks have
 * fired, and never frees the entry the caller is about to rebuild.
 */
static void
sweep_invalid_entries(Oid keep)
{
	HASH_SEQ_STATUS status;
	AARelInfo  *entry;

	hash_seq_init(&status, relinfo_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->valid || entry->tgoid == keep)
			continue;
		if (entry->mcxt != NULL)
			MemoryContextDelete(entry->mcxt);
		if (entry == last_entry)
			last_entry = NULL;
		hash_search(relinfo_hash, &entry->tgoid, HASH_REMOVE, NULL);
	}
}

/*
 * The cache entry for this trigger on this relation, rebuilt if anything it
 * depends on changed since it was made.  may_sweep is false for a nested
 * firing, whose callers up the stack may still hold invalidated entries.
 */
AARelInfo *
aa_get_relinfo(Relation rel, Trigger *trigger, bool may_sweep)
{
	AARelInfo  *ri;
	bool		found;

	ri = last_entry;
	if (ri != NULL && ri->tgoid == trigger->tgoid && ri->valid &&
		ri->relid == RelationGetRelid(rel) &&
		ri->natts == RelationGetDescr(rel)->natts)
		return ri;

	if (relinfo_hash == NULL)
		init_relinfo_hash();

	ri = hash_search(relinfo_hash, &trigger->tgoid, HASH_ENTER, &found);
	last_entry = ri;
	if (!found)
	{
		ri->mcxt = NULL;
		ri->valid = false;
		ri->building = false;
	}
	else if (ri->valid && ri->relid == RelationGetRelid(rel) &&
			 ri->natts == RelationGetDescr(rel)->natts)
		return ri;

	if (may_sweep)
		sweep_invalid_entries(trigger->tgoid);

	/*
	 * The catalog lookups of a build process invalidations (each lock taken
	 * does), some of which may concern what the build has already read: an
	 * entry hit by one is built again.  That stops at the first build that
	 * sees no new invalidation; a second one finds the caches warm and so
	 * takes few locks.  An error leaves 'building' set on an invalid entry,
	 * which is harmless: the next call starts the build afresh.
	 */
	do
	{
		if (ri->mcxt != NULL)
		{
			MemoryContextDelete(ri->mcxt);
			ri->mcxt = NULL;
		}
		ri->valid = false;
		ri->building = true;
		ri->build_stale = false;
		build_entry(ri, rel, trigger);
		ri->building = false;
	} while (ri->build_stale);
	return ri;
}

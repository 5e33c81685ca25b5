/*-------------------------------------------------------------------------
 *
 * capture.h
 *		Declarations shared by the files of the capture stage: the trigger
 *		(capture.c), the per-relation cache and configuration (relinfo.c),
 *		the value serializer (json_value.c), the event and its WAL message
 *		(event.c) and the session context settings (context.c).
 *
 * Data flows one way: trigger -> relation cache -> values -> event -> WAL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_CAPTURE_H
#define AA_CAPTURE_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/relcache.h"
#include "utils/reltrigger.h"

/* utility_hook.c: audit triggers of partitions follow partition DDL */
extern void aa_install_utility_hook(void);

/* json_value.c: values to JSON text, as to_jsonb() would */
typedef enum AAJsonCategory
{
	AAJ_INT2,					/* int2: digits */
	AAJ_INT4,					/* int4: digits */
	AAJ_INT8,					/* int8: digits */
	AAJ_BOOL,					/* true / false */
	AAJ_TEXT,					/* text, varchar, char: the stored string */
	AAJ_NUMERIC,				/* numeric: number if valid, else string */
	AAJ_FLOAT,					/* float4/float8: as numeric_in reads the text */
	AAJ_DATETIME,				/* date, timestamp, timestamptz: ISO string */
	AAJ_JSON,					/* json text, embedded compactly */
	AAJ_JSONB,					/* jsonb, embedded compactly */
	AAJ_ARRAY,					/* nested JSON arrays */
	AAJ_COMPOSITE,				/* JSON object of the attributes */
	AAJ_CAST,					/* user type with a cast to json */
	AAJ_OTHER					/* output function, as a JSON string */
} AAJsonCategory;

typedef struct AAValueOut
{
	AAJsonCategory category;
	Oid			typid;			/* the type, domains resolved */
	FmgrInfo	func;			/* output function, or the cast to json */
	bool		has_float;		/* is or contains a float (json_number.c) */
	/* arrays */
	Oid			elemtype;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	struct AAValueOut *elem;
	/* date/time: the last value's text, as bulk writes repeat values */
	bool		dt_cached;
	Datum		dt_value;
	const void *dt_zone;		/* session_timezone it was formatted in */
	int			dt_len;
	char		dt_text[MAXDATELEN + 3];	/* quoted */
	/* composites */
	Oid			typrelid;		/* pg_class entry of the composite type */
	TupleDesc	tupdesc;
	struct AAValueOut *atts;	/* per attribute, NULL-category for dropped */
	char	  **attkeys;		/* per attribute: "name": pre-escaped */
} AAValueOut;

extern void aa_value_out_init(AAValueOut *vo, Oid typid, MemoryContext mcxt);
extern void aa_value_append(StringInfo buf, AAValueOut *vo, Datum value);
extern void aa_value_append_text(StringInfo buf, AAValueOut *vo,
								 FmgrInfo *typoutput, Datum value);
extern List *aa_value_out_composites(AAValueOut *vo, List *relids);

/* json_number.c: floats as to_jsonb() writes them */
extern void aa_json_float(StringInfo buf, const char *str, int len);
extern bool aa_value_same_json(AAValueOut *vo, Datum a, Datum b);

/* relinfo.c: what the trigger knows about one audited relation */
typedef struct AAColumn
{
	bool		dropped;		/* attisdropped: never in events */
	bool		excluded;		/* listed in exclude */
	bool		redacted;		/* listed in redact */
	char	   *key;			/* "name": pre-escaped */
	int			keylen;
	FmgrInfo	typoutput;		/* plain text output, for instance_id */
	int16		typlen;
	bool		typbyval;
	AAValueOut	vo;
} AAColumn;

typedef struct AARelInfo
{
	Oid			tgoid;			/* hash key: the trigger, hence its args */
	Oid			relid;
	bool		valid;			/* false once an invalidation arrives */
	bool		building;		/* build_entry() is filling it in */
	bool		build_stale;	/* an invalidation arrived meanwhile */
	MemoryContext mcxt;			/* owns everything below */
	int			natts;
	AAColumn   *cols;			/* indexed by attnum - 1 */
	int			npk;
	AttrNumber *pkatts;			/* primary key columns in key order */
	List	   *type_relids;	/* composite types the columns use */
	bool		log_noop_updates;
	char	   *model;			/* model name, JSON-escaped, no quotes */
	int			model_len;
	char	   *model_field;	/* "model":"..." */
	int			model_field_len;
	char	   *where_fields;	/* "schema":"...","table":"..." */
	int			where_fields_len;
	/* event.c: the last header written for it (compact WAL format) */
	uint64		hdr_txid;		/* its transaction; 0: none */
	SubTransactionId hdr_subxid;
	uint64		hdr_generation; /* aa_context_generation it was built at */
	Oid			hdr_role;		/* current_user then */
	Oid			hdr_session_role;	/* session_user then */
	uint64		hdr_serial;		/* event.c's header count at the time */
	uint64		hdr_counter;	/* its message number */
	int			hdr_rows;		/* rows that refer to it */
	char	   *hdr_appname;	/* application_name then (in mcxt) */
} AARelInfo;

extern AARelInfo *aa_get_relinfo(Relation rel, Trigger *trigger,
								  bool may_sweep);
extern AARelInfo *aa_relinfo_names(Relation rel, Trigger *trigger);

/* event.c: one event, built and written into the WAL */
typedef enum AAEventType
{
	AA_EVENT_CREATE,
	AA_EVENT_UPDATE,
	AA_EVENT_DELETE,
	AA_EVENT_TRUNCATE
} AAEventType;

extern void aa_emit_row_event(AARelInfo *ri, AAEventType type, bool nested,
							  TupleTableSlot *oldslot, TupleTableSlot *newslot);
extern void aa_emit_truncate_event(AARelInfo *ri, bool nested);
extern void aa_emit_config_event(AARelInfo *ri, const char *event_type,
								 const char *repr);

/* config_event.c: audit.config events (SPEC 9) */
extern void aa_note_suppressed(Relation rel, Trigger *trigger);
extern void aa_emit_app_event(const char *level, const char *name,
							  const char *message, const char *event_type,
							  const char *members, int members_len);

#endif							/* AA_CAPTURE_H */

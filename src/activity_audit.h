/*-------------------------------------------------------------------------
 *
 * activity_audit.h
 *		Declarations shared by the files of the activity_audit extension.
 *
 * Each .c file owns one concern (see the header comment of each); this
 * header only carries the types and entry points they hand to each other.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ACTIVITY_AUDIT_H
#define ACTIVITY_AUDIT_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/relcache.h"
#include "utils/reltrigger.h"

/* Prefix of the logical-decoding messages that carry events. */
#define AA_MESSAGE_PREFIX	"activity_audit"

/*
 * Appending to a StringInfo with the capacity check inline: an event is
 * some sixty small pieces, and nearly all of them fit without enlarging, so
 * the per-piece function call of appendBinaryStringInfo() is worth saving.
 */
static inline void
aa_put(StringInfo buf, const char *data, int len)
{
	if (buf->len + len >= buf->maxlen)
		enlargeStringInfo(buf, len);
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static inline void
aa_put_char(StringInfo buf, char c)
{
	if (buf->len + 1 >= buf->maxlen)
		enlargeStringInfo(buf, 1);
	buf->data[buf->len++] = c;
	buf->data[buf->len] = '\0';
}

#define aa_put_lit(buf, lit)	aa_put((buf), "" lit, sizeof(lit) - 1)

/* A function, not a macro: its argument is often a call, evaluated once. */
static inline void
aa_put_str(StringInfo buf, const char *str)
{
	aa_put(buf, str, strlen(str));
}

/* activity_audit.c: module entry point */
extern bool aa_preloaded;
extern void aa_require_preload(void);

/* utility_hook.c: audit triggers of partitions follow partition DDL */
extern void aa_install_utility_hook(void);

/* sign.c: the event key and the MAC of events */
extern void aa_load_event_key(void);
extern void aa_sign_event(StringInfo buf, uint64 txid);
extern bool aa_verify_event(const char *msg, size_t len, size_t *body_len,
							uint64 *txid);

/* context.c: the audit.* session GUCs */
extern char *aa_user_id;
extern char *aa_user_info;
extern char *aa_request_id;
extern char *aa_extra;
extern char *aa_service_name;
extern bool aa_enabled;
extern void aa_define_context_gucs(void);

/* json_value.c: values to JSON text, as to_jsonb() would */
typedef enum AAJsonCategory
{
	AAJ_INT2,					/* int2: digits */
	AAJ_INT4,					/* int4: digits */
	AAJ_INT8,					/* int8: digits */
	AAJ_BOOL,					/* true / false */
	AAJ_TEXT,					/* text, varchar, char: the stored string */
	AAJ_NUMERIC,				/* float/numeric: number if valid, else string */
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
extern void aa_json_string(StringInfo buf, const char *s, int len);
extern void aa_json_string_body(StringInfo buf, const char *s, int len);
extern bool aa_json_compact(StringInfo buf, const char *json, int len);
extern bool aa_json_valid(char *json, char **detail);

#define AA_UTC_TEXT_LEN		27	/* YYYY-MM-DDTHH:MM:SS.ffffffZ */
extern void aa_format_utc(TimestampTz ts, char *out);

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
} AARelInfo;

extern AARelInfo *aa_get_relinfo(Relation rel, Trigger *trigger,
								  bool may_sweep);

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

#endif							/* ACTIVITY_AUDIT_H */

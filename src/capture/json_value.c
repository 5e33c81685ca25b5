/*-------------------------------------------------------------------------
 *
 * json_value.c
 *		Column values to JSON text, exactly as to_jsonb() would see them.
 *
 * to_jsonb() is the contract's oracle for instance_repr and changes, so the
 * classification here follows jsonb_categorize_type(): domains are looked
 * through, numbers stay numbers when their text is a valid JSON number
 * (floats written as jsonb prints them, see json_number.c),
 * date/time types use the JSON date encoding, json and jsonb are embedded,
 * arrays and composites nest, user types with a cast to json use it, and
 * everything else becomes its output function's text as a JSON string.
 *
 * Classification happens once per column (aa_value_out_init, called while a
 * relation's cache entry is built); aa_value_append does no catalog work.
 *
 * Output is always pure ASCII on one line: non-ASCII characters are written
 * as \uXXXX escapes (as Python's json.dumps does by default), so an event
 * reads the same whatever the encoding of whoever consumes it.
 *
 * This file must not know about events, triggers or relations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "parser/parse_coerce.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/json_out.h"
#include "common/strbuf.h"

/* pg_ltoa and pg_lltoa return the length only since PostgreSQL 14. */
#if PG_VERSION_NUM >= 140000
#define int32_to_text(v, buf)	pg_ltoa((v), (buf))
#define int64_to_text(v, buf)	pg_lltoa((v), (buf))
#else
#define int32_to_text(v, buf)	(pg_ltoa((v), (buf)), (int) strlen(buf))
#define int64_to_text(v, buf)	(pg_lltoa((v), (buf)), (int) strlen(buf))
#endif

/*
 * The composite part of aa_value_out_init: a copy of the row type's
 * descriptor, each live attribute classified, and its key pre-escaped.
 */
static void
init_composite(AAValueOut *vo, Oid typid, MemoryContext mcxt)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(typid, -1);
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	int			i;

	vo->category = AAJ_COMPOSITE;
	vo->typrelid = get_typ_typrelid(typid);
	vo->tupdesc = CreateTupleDescCopy(desc);
	ReleaseTupleDesc(desc);
	vo->atts = palloc0(sizeof(AAValueOut) * vo->tupdesc->natts);
	vo->attkeys = palloc0(sizeof(char *) * vo->tupdesc->natts);
	MemoryContextSwitchTo(old);
	for (i = 0; i < vo->tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(vo->tupdesc, i);
		StringInfoData key;

		if (att->attisdropped)
			continue;
		aa_value_out_init(&vo->atts[i], att->atttypid, mcxt);
		vo->has_float |= vo->atts[i].has_float;
		old = MemoryContextSwitchTo(mcxt);
		initStringInfo(&key);
		aa_json_string(&key, NameStr(att->attname), strlen(NameStr(att->attname)));
		appendStringInfoChar(&key, ':');
		vo->attkeys[i] = key.data;
		MemoryContextSwitchTo(old);
	}
}

/*
 * Classify a type the way jsonb_categorize_type() does and prepare what
 * serializing its values needs (output function, element or attribute
 * descriptions), allocated in mcxt so it lives as long as the cache entry.
 */
void
aa_value_out_init(AAValueOut *vo, Oid typid, MemoryContext mcxt)
{
	Oid			funcoid = InvalidOid;
	bool		isvarlena;

	check_stack_depth();
	memset(vo, 0, sizeof(AAValueOut));
	typid = getBaseType(typid);
	vo->typid = typid;

	switch (typid)
	{
		case BOOLOID:
			vo->category = AAJ_BOOL;
			break;
		case INT2OID:
			vo->category = AAJ_INT2;
			break;
		case INT4OID:
			vo->category = AAJ_INT4;
			break;
		case INT8OID:
			vo->category = AAJ_INT8;
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			/* their output function returns the stored string unchanged */
			vo->category = AAJ_TEXT;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			vo->category = AAJ_FLOAT;
			vo->has_float = true;
			getTypeOutputInfo(typid, &funcoid, &isvarlena);
			break;
		case NUMERICOID:
			vo->category = AAJ_NUMERIC;
			getTypeOutputInfo(typid, &funcoid, &isvarlena);
			break;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			vo->category = AAJ_DATETIME;
			break;
		case JSONOID:
			vo->category = AAJ_JSON;
			break;
		case JSONBOID:
			vo->category = AAJ_JSONB;
			break;
		default:
			vo->elemtype = get_element_type(typid);
			if (OidIsValid(vo->elemtype))
			{
				vo->category = AAJ_ARRAY;
				get_typlenbyvalalign(vo->elemtype, &vo->elmlen,
									 &vo->elmbyval, &vo->elmalign);
				vo->elem = MemoryContextAlloc(mcxt, sizeof(AAValueOut));
				aa_value_out_init(vo->elem, vo->elemtype, mcxt);
				vo->has_float = vo->elem->has_float;
			}
			else if (type_is_rowtype(typid))
				init_composite(vo, typid, mcxt);
			else
			{
				Oid			castfunc = InvalidOid;

				vo->category = AAJ_OTHER;
				/* like to_jsonb, honour a cast to json of non-built-in types */
				if (typid >= FirstNormalObjectId &&
					find_coercion_pathway(JSONOID, typid, COERCION_EXPLICIT,
										  &castfunc) == COERCION_PATH_FUNC &&
					OidIsValid(castfunc))
				{
					vo->category = AAJ_CAST;
					funcoid = castfunc;
				}
				else
					getTypeOutputInfo(typid, &funcoid, &isvarlena);
			}
			break;
	}
	if (OidIsValid(funcoid))
		fmgr_info_cxt(funcoid, &vo->func, mcxt);
}

/*
 * Add to relids the pg_class OIDs of the composite types a value of this
 * kind may contain.  ALTER TYPE on a composite invalidates only the type's
 * own relcache entry; the relation cache must know to listen for it.
 */
List *
aa_value_out_composites(AAValueOut *vo, List *relids)
{
	int			i;

	if (vo->category == AAJ_ARRAY)
		return aa_value_out_composites(vo->elem, relids);
	if (vo->category != AAJ_COMPOSITE)
		return relids;
	relids = list_append_unique_oid(relids, vo->typrelid);
	for (i = 0; i < vo->tupdesc->natts; i++)
	{
		if (!TupleDescAttr(vo->tupdesc, i)->attisdropped)
			relids = aa_value_out_composites(&vo->atts[i], relids);
	}
	return relids;
}

/* One dimension of an array, recursing into inner dimensions. */
static void
append_array_dim(StringInfo buf, AAValueOut *elem, int dim, int ndims,
				 int *dims, Datum *vals, bool *nulls, int *pos)
{
	int			i;

	aa_put_char(buf, '[');
	for (i = 0; i < dims[dim]; i++)
	{
		if (i > 0)
			aa_put_char(buf, ',');
		if (dim + 1 == ndims)
		{
			if (nulls[*pos])
				aa_put_lit(buf, "null");
			else
				aa_value_append(buf, elem, vals[*pos]);
			(*pos)++;
		}
		else
			append_array_dim(buf, elem, dim + 1, ndims, dims, vals, nulls, pos);
	}
	aa_put_char(buf, ']');
}

/* An array value, nested by dimension as array_to_jsonb() does. */
static void
append_array(StringInfo buf, AAValueOut *vo, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int			ndims = ARR_NDIM(arr);
	Datum	   *vals;
	bool	   *nulls;
	int			nitems;
	int			pos = 0;

	if (ndims <= 0 || ArrayGetNItems(ndims, ARR_DIMS(arr)) == 0)
	{
		aa_put_lit(buf, "[]");
		return;
	}
	deconstruct_array(arr, vo->elemtype, vo->elmlen, vo->elmbyval,
					  vo->elmalign, &vals, &nulls, &nitems);
	append_array_dim(buf, vo->elem, 0, ndims, ARR_DIMS(arr), vals, nulls, &pos);
	pfree(vals);
	pfree(nulls);
}

/* A composite value, as an object of its live attributes. */
static void
append_composite(StringInfo buf, AAValueOut *vo, Datum value)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(value);
	HeapTupleData tuple;
	TupleDesc	desc = vo->tupdesc;
	Datum	   *vals = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	bool		first = true;
	int			i;

	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	heap_deform_tuple(&tuple, desc, vals, nulls);

	aa_put_char(buf, '{');
	for (i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		if (!first)
			aa_put_char(buf, ',');
		first = false;
		aa_put_str(buf, vo->attkeys[i]);
		if (nulls[i])
			aa_put_lit(buf, "null");
		else
			aa_value_append(buf, &vo->atts[i], vals[i]);
	}
	aa_put_char(buf, '}');
	pfree(vals);
	pfree(nulls);
}

/*
 * Append a non-null value as JSON.  Allocations go to the current memory
 * context, which the caller resets after each row.
 */
void
aa_value_append(StringInfo buf, AAValueOut *vo, Datum value)
{
	char		num[MAXINT8LEN + 1];
	char	   *str;
	int			len;

	switch (vo->category)
	{
		case AAJ_INT2:
			len = int32_to_text(DatumGetInt16(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_INT4:
			len = int32_to_text(DatumGetInt32(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_INT8:
			len = int64_to_text(DatumGetInt64(value), num);
			aa_put(buf, num, len);
			break;
		case AAJ_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				aa_json_string(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_BOOL:
			if (DatumGetBool(value))
				aa_put_lit(buf, "true");
			else
				aa_put_lit(buf, "false");
			break;
		case AAJ_NUMERIC:
			str = OutputFunctionCall(&vo->func, value);
			len = strlen(str);
			/* NaN and the infinities are not JSON numbers: to_jsonb quotes them */
			if (IsValidJsonNumber(str, len))
				aa_put(buf, str, len);
			else
				aa_json_string(buf, str, len);
			break;
		case AAJ_FLOAT:
			str = OutputFunctionCall(&vo->func, value);
			aa_json_float(buf, str, strlen(str));
			break;
		case AAJ_DATETIME:
			/*
			 * timestamptz text depends on the session's TimeZone; where
			 * timestamps are passed by reference, equal Datums say nothing
			 */
			if (!vo->dt_cached || vo->dt_value != value || !FLOAT8PASSBYVAL ||
				vo->dt_zone != (const void *) session_timezone)
			{
				char		dt[MAXDATELEN + 1];

				JsonEncodeDateTime(dt, value, vo->typid, NULL);
				vo->dt_len = snprintf(vo->dt_text, sizeof(vo->dt_text),
									  "\"%s\"", dt);
				vo->dt_value = value;
				vo->dt_zone = (const void *) session_timezone;
				vo->dt_cached = true;
			}
			aa_put(buf, vo->dt_text, vo->dt_len);
			break;
		case AAJ_JSON:
			{
				text	   *t = DatumGetTextPP(value);

				aa_json_compact(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
				aa_json_compact(buf, str, strlen(str));
			}
			break;
		case AAJ_CAST:
			{
				text	   *t = DatumGetTextPP(FunctionCall1(&vo->func, value));

				aa_json_compact(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case AAJ_ARRAY:
			append_array(buf, vo, value);
			break;
		case AAJ_COMPOSITE:
			append_composite(buf, vo, value);
			break;
		case AAJ_OTHER:
			str = OutputFunctionCall(&vo->func, value);
			aa_json_string(buf, str, strlen(str));
			break;
	}
}

/*
 * Append a value's plain text (what its output function gives), without
 * JSON quoting: the text of a one-column instance_id.  Integers and strings,
 * the usual key types, skip the output function call.
 */
void
aa_value_append_text(StringInfo buf, AAValueOut *vo, FmgrInfo *typoutput,
					 Datum value)
{
	switch (vo->category)
	{
		case AAJ_INT2:
		case AAJ_INT4:
		case AAJ_INT8:
			aa_value_append(buf, vo, value);
			break;
		case AAJ_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				aa_put(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		default:
			aa_put_str(buf, OutputFunctionCall(typoutput, value));
			break;
	}
}

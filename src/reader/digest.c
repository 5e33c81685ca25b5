/*-------------------------------------------------------------------------
 *
 * digest.c
 *		activity_audit.digest() and activity_audit.verify(digests): the
 *		stream's head as a signed digest for an external job to keep, and
 *		the check that exposes a stream cut or rewritten since (SPEC 9).
 *
 * A hash chain cannot see lines cut from its end; a digest stored outside
 * the database can.  The digest's text and the check are common/digest.c's
 * (the offline tool uses them too); its signature, under a key derived
 * from the event key, is common/sign.c's, so only this server (or one with
 * its keys) can make or check one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "common/digest.h"
#include "common/json_out.h"
#include "common/sign.h"
#include "common/stream_line.h"
#include "reader/reader.h"

PG_FUNCTION_INFO_V1(activity_audit_digest);
PG_FUNCTION_INFO_V1(activity_audit_verify_digests);

/* A digest's committed_at text as a timestamptz. */
static Datum
committed_at_datum(const char *text)
{
	return DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/*
 * The last complete line of the stream (of its last file that has one),
 * parsed into *d; false when the stream has no line.
 */
static bool
stream_head(AADigest *d)
{
	LineReader	r;
	int			i;

	aa_reader_init(&r);
	for (i = r.nfiles - 1; i >= 0; i--)
	{
		char	   *line;
		size_t		len;
		char	   *last = NULL;
		size_t		last_len = 0;
		AALine		parsed;

		r.fileno = i - 1;
		if (!aa_reader_next_file(&r))
			break;
		while (aa_reader_line_in_file(&r, &line, &len))
		{
			if (last)
				pfree(last);
			last = pnstrdup(line, len);
			last_len = len;
		}
		aa_reader_close_file(&r);
		if (last == NULL)
			continue;
		if (!aa_line_parse(last, last_len, &parsed))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the last line of audit file \"%s\" does not end with the stream's keys",
							r.files[i]),
					 errhint("Run activity_audit.verify() to see what is wrong with the stream.")));
		memset(d, 0, sizeof(*d));
		d->seq = parsed.seq;
		memcpy(d->hash, parsed.hash, AA_HASH_HEX_LEN);
		d->lsn = parsed.lsn;
		memcpy(d->committed_at, parsed.committed_at, AA_UTC_LEN);
		return true;
	}
	return false;
}

/*
 * digest(): the stream's head -- its last delivered line's seq, hash, lsn
 * and committed_at -- signed.  No row when the stream is empty.
 */
Datum
activity_audit_digest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AADigest	d;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (!stream_head(&d))
		return (Datum) 0;
	aa_digest_sign(&d);
	values[0] = Int64GetDatum((int64) d.seq);
	values[1] = CStringGetTextDatum(d.hash);
	values[2] = LSNGetDatum((XLogRecPtr) d.lsn);
	values[3] = committed_at_datum(d.committed_at);
	values[4] = CStringGetTextDatum(d.sig);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* Report a digest that cannot be read, with what it must look like. */
static void
pg_attribute_noreturn()
bad_digest(int i, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("digest %d %s", i + 1, problem),
			 errhint("Pass the digests as a JSON array of digest() rows (jsonb_agg(d)), of the objects of AUDIT DIGEST lines, or of such lines as strings.")));
	pg_unreachable();
}

/* A string value of an object's key, or NULL. */
static char *
object_text(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

/* One digest given as an object: digest()'s columns or a log line's keys. */
static void
digest_of_object(int i, JsonbContainer *obj, AADigest *d)
{
	char	   *seq = object_text(obj, "seq");
	char	   *hash = object_text(obj, "hash");
	char	   *lsn = object_text(obj, "lsn");
	char	   *at = object_text(obj, "committed_at");
	char	   *sig = object_text(obj, "sig");
	const char *end;
	TimestampTz ts;

	if (!seq || !hash || !lsn || !at || !sig)
		bad_digest(i, "lacks one of seq, hash, lsn, committed_at and sig");
	memset(d, 0, sizeof(*d));
	if (!aa_parse_uint64(seq, &d->seq, &end) || *end != '\0')
		bad_digest(i, "has a seq that is not a whole number");
	if (strlen(hash) != AA_HASH_HEX_LEN || !aa_is_hash_hex(hash))
		bad_digest(i, "has a hash that is not 64 lowercase hex digits");
	strlcpy(d->hash, hash, sizeof(d->hash));
	if (!aa_parse_lsn(lsn, &d->lsn, &end) || *end != '\0')
		bad_digest(i, "has an lsn that is not an LSN");
	/* digest() rows give committed_at as timestamptz text: same instant */
	ts = DatumGetTimestampTz(committed_at_datum(at));
	aa_format_utc(ts, d->committed_at);
	if (strlen(sig) != AA_DIGEST_SIG_LEN)
		bad_digest(i, "has a sig that is not 16 hex digits");
	strlcpy(d->sig, sig, sizeof(d->sig));
}

/*
 * verify(digests jsonb): verify() and, on the way, that the stream holds
 * every digest's seq with its hash.  A digest not signed by this server's
 * keys is an ERROR: a check against a made-up digest proves nothing.
 */
Datum
activity_audit_verify_digests(PG_FUNCTION_ARGS)
{
	Jsonb	   *arr = PG_GETARG_JSONB_P(0);
	AADigest   *digests;
	int			n;
	int			i = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	AADigestCheck dc;

	if (!JB_ROOT_IS_ARRAY(arr) || JB_ROOT_IS_SCALAR(arr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("digests must be a JSON array"),
				 errhint("Pass the digests as a JSON array of digest() rows (jsonb_agg(d)), of the objects of AUDIT DIGEST lines, or of such lines as strings.")));
	n = JB_ROOT_COUNT(arr);
	digests = palloc0(sizeof(AADigest) * Max(n, 1));
	it = JsonbIteratorInit(&arr->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type == jbvString)
		{
			char	   *text = pnstrdup(v.val.string.val, v.val.string.len);

			if (!aa_digest_parse(text, strlen(text), &digests[i]))
				bad_digest(i, "is not an AUDIT DIGEST line or digest");
		}
		else if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
			digest_of_object(i, v.val.binary.data, &digests[i]);
		else
			bad_digest(i, "is neither an object nor a string");
		if (!aa_digest_sig_ok(&digests[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("digest %d (seq " UINT64_FORMAT ") is not signed by this server's event key",
							i + 1, digests[i].seq),
					 errhint("Only digests this server (or one with the same audit.key_file) wrote can be checked; was it edited?")));
		i++;
	}
	aa_digest_check_init(&dc, digests, n);
	return aa_verify_stream(fcinfo, &dc);
}

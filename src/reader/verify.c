/*-------------------------------------------------------------------------
 *
 * verify.c
 *		activity_audit.verify(): the hash chain of the whole stream,
 *		checked from SQL (SPEC section 6).
 *
 * The rules and the wording of every verdict are common/stream_line.c's,
 * shared with the offline tool activity_audit_verify, so both always give
 * the same verdict on the same directory.  This file only feeds it the
 * lines of the files, in order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"

#include "common/digest.h"
#include "common/stream_line.h"
#include "reader/reader.h"

PG_FUNCTION_INFO_V1(activity_audit_verify);

/*
 * activity_audit.verify(): recompute the hash chain over every file of the
 * stream and report the first line that breaks it.
 *
 * first_bad_seq is the seq the first failing line should have had: every
 * event before it is proven intact.  events counts every complete line of
 * every file (also those after a break).  An intact chain with gap lines
 * (WAL the writer could not read: stream_format.h) stays ok, and its
 * detail says where events were lost.
 */
Datum
activity_audit_verify(PG_FUNCTION_ARGS)
{
	return aa_verify_stream(fcinfo, NULL);
}

/*
 * The check of verify() and verify(digests) (reader/digest.c): the chain,
 * and with dc, every digest against the verified lines.  A failed digest
 * makes the verdict false with the digest's detail, the chain's own first
 * break coming first.
 */
Datum
aa_verify_stream(FunctionCallInfo fcinfo, AADigestCheck *dc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LineReader	r;
	AAChainCheck chain;
	int64		events = 0;
	char	   *line;
	size_t		len;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	aa_reader_init(&r);
	aa_chain_init(&chain);
	if (dc)
	{
		chain.start_ok = aa_digest_anchor;
		chain.start_arg = dc;
	}

	for (;;)
	{
		if (r.fd >= 0 && aa_reader_line_in_file(&r, &line, &len))
		{
			events++;
			if (aa_chain_line(&chain, r.files[r.fileno], r.lineno, line, len) && dc)
				aa_digest_check_line(dc, chain.last_seq, chain.prev_hash);
			continue;
		}
		/* a file other than the last must end with a newline */
		if (r.fd >= 0 && r.partial && r.fileno < r.nfiles - 1)
			aa_chain_incomplete_file(&chain, r.files[r.fileno], r.lineno + 1,
									 r.end - r.start);
		if (!aa_reader_next_file(&r))
			break;
	}
	aa_reader_close_file(&r);
	if (dc)
		aa_digest_check_end(dc, chain.broken ? chain.first_bad_seq - 1 : chain.last_seq);

	if (dc && dc->failed && !chain.broken)
	{
		values[0] = BoolGetDatum(false);
		values[1] = Int64GetDatum(events);
		values[2] = Int64GetDatum((int64) dc->bad_seq);
		values[3] = CStringGetTextDatum(dc->detail);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		return (Datum) 0;
	}
	values[0] = BoolGetDatum(!chain.broken);
	values[1] = Int64GetDatum(events);
	if (chain.broken)
	{
		values[2] = Int64GetDatum((int64) chain.first_bad_seq);
		values[3] = CStringGetTextDatum(chain.detail);
	}
	else
	{
		nulls[2] = true;
		if (events == 0)
			values[3] = CStringGetTextDatum(r.nfiles == 0 ? "no audit files" : "no events");
		else
		{
			char		note[AA_CHAIN_DETAIL_LEN];

			aa_chain_gap_note(&chain, note, sizeof(note));
			values[3] = CStringGetTextDatum(psprintf("seq " UINT64_FORMAT " to " UINT64_FORMAT " intact in %d file(s)%s%s%s",
													 (uint64) chain.first_seq, (uint64) chain.last_seq, r.nfiles,
													 note[0] ? "; " : "", note,
													 dc ? psprintf("; %d digest(s) found in the stream%s%s", dc->matched,
																   dc->anchor_seq ? psprintf(", which starts after the digest of seq " UINT64_FORMAT, dc->anchor_seq) : "",
																   dc->before_first ? psprintf(", %d before its first line", dc->before_first) : "") : ""));
		}
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

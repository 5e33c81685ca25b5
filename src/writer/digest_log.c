/*-------------------------------------------------------------------------
 *
 * digest_log.c
 *		The writer's "AUDIT DIGEST: {...}" lines in the server log: the
 *		stream's durable head, signed, every audit.digest_interval while
 *		events were delivered, and when the writer stops (SPEC section 9).
 *
 * The server log usually leaves the machine (syslog, a log shipper); a
 * digest there is an anchor that an edit of the stream's files cannot
 * move: verify(digests) and activity_audit_verify --digests fail on a
 * stream that lacks the digest's seq or holds it with another hash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "common/digest.h"
#include "common/json_out.h"
#include "common/sign.h"
#include "guc.h"
#include "writer/writer.h"

/* the seq of the last digest logged, and when */
static uint64 logged_seq = 0;
static TimestampTz logged_at = 0;

/*
 * Log a digest of the stream's durable head if events were delivered since
 * the last one and audit.digest_interval has passed (or, 'final', the
 * writer stops).  Only what is durable (after aa_deliver_sync) is named.
 */
void
aa_digest_tick(bool final)
{
	AAStreamPos pos;
	AADigest	d;
	TimestampTz now;
	TimestampTz committed_at = aa_deliver_last_committed_at();
	char		text[AA_DIGEST_TEXT_MAX];

	if (aa_digest_interval <= 0 || !(aa_sinks & AA_SINK_FILE) || committed_at == 0)
		return;
	aa_stream_position(&pos);
	if (pos.seq == 0 || pos.seq == logged_seq)
		return;
	now = GetCurrentTimestamp();
	if (!final && logged_at != 0 &&
		!TimestampDifferenceExceeds(logged_at, now, aa_digest_interval * 1000))
		return;

	memset(&d, 0, sizeof(d));
	d.seq = pos.seq;
	memcpy(d.hash, pos.hash, AA_HASH_HEX_LEN);
	d.lsn = pos.commit_lsn;
	aa_format_utc(committed_at, d.committed_at);
	aa_digest_sign(&d);
	aa_digest_format(&d, text, sizeof(text));
	ereport(LOG,
			(errmsg("%s%s", AA_DIGEST_LOG_PREFIX, text),
			 errhidestmt(true), errhidecontext(true)));
	logged_seq = pos.seq;
	logged_at = now;
}

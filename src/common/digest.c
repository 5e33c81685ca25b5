/*-------------------------------------------------------------------------
 *
 * digest.c
 *		Digests of the stream's head: their text, reading them back, and
 *		checking a stream against them (digest.h).
 *
 * The writer, digest(), verify(digests) and activity_audit_verify
 * --digests all go through here, so they agree on what a digest says and
 * on what disproves a stream.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"

/*
 * The digest as JSON, in this form and order:
 *	 {"seq":N,"hash":"<64 hex>","lsn":"X/Y","committed_at":"<27>","sig":"<16 hex>"}
 * Returns the length (as snprintf).
 */
int
aa_digest_format(const AADigest *d, char *out, size_t size)
{
	return snprintf(out, size,
					"{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"lsn\":\"%X/%X\",\"committed_at\":\"%s\",\"sig\":\"%s\"}",
					d->seq, d->hash, (unsigned) (d->lsn >> 32), (unsigned) d->lsn,
					d->committed_at, d->sig);
}

/* The text the signature covers: seq, hash, lsn and committed_at. */
int
aa_digest_signed_text(const AADigest *d, char *out, size_t size)
{
	return snprintf(out, size, "%" PRIu64 "|%s|%X/%X|%s",
					d->seq, d->hash, (unsigned) (d->lsn >> 32), (unsigned) d->lsn,
					d->committed_at);
}

/* Expect the literal 'lit' at *p (within end); move past it. */
static bool
take(const char **p, const char *end, const char *lit)
{
	size_t		n = strlen(lit);

	if ((size_t) (end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* Copy exactly n characters of a string value, which must end with a quote. */
static bool
take_chars(const char **p, const char *end, char *out, size_t n)
{
	if ((size_t) (end - *p) < n + 1 || memchr(*p, '"', n) != NULL || (*p)[n] != '"')
		return false;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n + 1;
	return true;
}

/*
 * Read a digest in the form aa_digest_format() writes, from a text that is
 * the digest or contains it after "AUDIT DIGEST: " (a server-log line,
 * whatever its log_line_prefix).  False if there is none, or it is not
 * exactly that form.
 */
bool
aa_digest_parse(const char *text, size_t len, AADigest *d)
{
	const char *end = text + len;
	const char *p = text;
	const char *q;
	size_t		plen = strlen(AA_DIGEST_LOG_PREFIX);

	/* after the prefix, if there is one */
	for (q = text; (size_t) (end - q) >= plen; q++)
		if (memcmp(q, AA_DIGEST_LOG_PREFIX, plen) == 0)
		{
			p = q + plen;
			break;
		}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	memset(d, 0, sizeof(*d));
	if (!take(&p, end, "{\"seq\":") || !aa_parse_uint64(p, &d->seq, &q) || q > end)
		return false;
	p = q;
	if (!take(&p, end, ",\"hash\":\"") || !take_chars(&p, end, d->hash, AA_HASH_HEX_LEN) ||
		!aa_is_hash_hex(d->hash))
		return false;
	if (!take(&p, end, ",\"lsn\":\"") || !aa_parse_lsn(p, &d->lsn, &q) || q >= end || *q != '"')
		return false;
	p = q + 1;
	if (!take(&p, end, ",\"committed_at\":\"") ||
		!take_chars(&p, end, d->committed_at, AA_UTC_LEN))
		return false;
	if (!take(&p, end, ",\"sig\":\"") || !take_chars(&p, end, d->sig, AA_DIGEST_SIG_LEN))
		return false;
	if (!take(&p, end, "}"))
		return false;
	/* only trailing white space (a newline) may follow */
	while (p < end && (*p == '\n' || *p == '\r' || *p == ' '))
		p++;
	return p == end;
}

/* qsort order: by seq. */
static int
digest_cmp(const void *a, const void *b)
{
	uint64_t	x = ((const AADigest *) a)->seq;
	uint64_t	y = ((const AADigest *) b)->seq;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Start checking a stream against these digests (sorted here, in place). */
void
aa_digest_check_init(AADigestCheck *c, AADigest *digests, int n)
{
	memset(c, 0, sizeof(*c));
	c->digests = digests;
	c->n = n;
	if (n > 1)
		qsort(digests, n, sizeof(AADigest), digest_cmp);
}

/*
 * The next verified line of the stream, in order: every digest of its seq
 * must name its hash.  A digest of a seq before the stream's first line
 * (older files removed) cannot be checked and is counted apart.
 */
void
aa_digest_check_line(AADigestCheck *c, uint64_t seq, const char *hash)
{
	if (c->failed)
		return;
	if (c->first_seq == 0)
		c->first_seq = seq;
	while (c->next < c->n && c->digests[c->next].seq < seq)
	{
		/* the digest the stream starts after was checked by aa_digest_anchor */
		if (c->digests[c->next].seq == c->anchor_seq)
			c->matched++;
		else
			c->before_first++;
		c->next++;
	}
	while (c->next < c->n && c->digests[c->next].seq == seq)
	{
		const AADigest *d = &c->digests[c->next];

		if (strcmp(d->hash, hash) != 0)
		{
			c->failed = true;
			c->bad_seq = seq;
			snprintf(c->detail, sizeof(c->detail),
					 "seq %" PRIu64 " has hash %.12s..., but the digest of %s says %.12s...: the stream was rewritten",
					 seq, hash, d->committed_at, d->hash);
			return;
		}
		c->matched++;
		c->next++;
	}
}

/*
 * The stream ended at last_seq: a digest of a later seq proves that events
 * were cut from its end (or its last files removed).
 */
void
aa_digest_check_end(AADigestCheck *c, uint64_t last_seq)
{
	const AADigest *d;

	if (c->failed || c->next >= c->n)
		return;
	d = &c->digests[c->n - 1];
	c->failed = true;
	c->bad_seq = last_seq + 1;
	snprintf(c->detail, sizeof(c->detail),
			 "the stream ends at seq %" PRIu64 ", but the digest of %s names seq %" PRIu64 ": events were cut from its end",
			 last_seq, d->committed_at, d->seq);
}

/*
 * The chain check's start_ok (stream_line.h): a stream whose oldest files
 * were removed or archived starts at seq > 1, and is accepted if a digest
 * names the seq before its first line with that line's prev_hash -- the
 * removed part ended exactly there.
 */
bool
aa_digest_anchor(void *check, uint64_t seq, const char *prev_hash)
{
	AADigestCheck *c = check;
	int			i;

	for (i = 0; i < c->n; i++)
		if (c->digests[i].seq == seq - 1 &&
			memcmp(c->digests[i].hash, prev_hash, AA_HASH_HEX_LEN) == 0)
		{
			c->anchor_seq = seq - 1;
			return true;
		}
	return false;
}

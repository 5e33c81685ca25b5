/*-------------------------------------------------------------------------
 *
 * stream_line.h
 *		One line of the delivered stream, parsed and checked: the single
 *		definition that the writer's recovery, the SQL readers, verify()
 *		and the offline tool share (stream_line.c).
 *
 * Plain C with no PostgreSQL headers, so that tools/activity_audit_verify
 * links it too.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_STREAM_LINE_H
#define AA_STREAM_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream_format.h"

/*
 * What the end of a line holds.  Offsets are from the start of the text
 * given to aa_line_parse().
 */
typedef struct AALine
{
	uint64_t	seq;
	uint64_t	lsn;			/* commit LSN, as 64 bits */
	const char *committed_at;	/* AA_UTC_LEN characters */
	const char *prev_hash;		/* AA_HASH_HEX_LEN characters */
	const char *hash;			/* AA_HASH_HEX_LEN characters */
	size_t		hashed_len;		/* bytes the hash covers (before ,"prev_hash") */
	size_t		body_len;		/* bytes before the writer's keys ("seq" ...) */
	bool		gap;			/* the event part ends like a gap line's */
} AALine;

/*
 * A gap line's own keys (stream_format.h), to write one (aa_gap_format)
 * or as read back (aa_gap_parse).
 */
typedef struct AAGap
{
	char		detected[AA_UTC_LEN + 1];	/* "timestamp", "committed_at" */
	char		reason[AA_GAP_REASON_MAX + 1];
	uint64_t	system_identifier;
	uint32_t	timeline;
	uint64_t	txid_upper_bound;
	uint64_t	lost_from;
	uint64_t	lost_to;
} AAGap;

/* room for aa_gap_format()'s text, and for aa_gap_text()'s */
#define AA_GAP_LINE_MAX		1024
#define AA_GAP_TEXT_MAX		256

extern bool aa_is_hash_hex(const char *s);
extern int	aa_hex_value(char c);
extern bool aa_parse_lsn(const char *s, uint64_t *lsn, const char **end);
extern bool aa_parse_uint64(const char *s, uint64_t *value, const char **end);
extern const char *aa_uint64_before(const char *start, const char *end,
									uint64_t *value);
extern bool aa_line_parse(const char *text, size_t len, AALine *line);
extern bool aa_is_stream_file_name(const char *name);
extern int	aa_gap_format(const AAGap *gap, char *out, size_t size);
extern bool aa_gap_parse(const char *text, size_t len, const AALine *line,
						 AAGap *gap);
extern void aa_gap_text(const AAGap *gap, char *out, size_t size);

/*
 * The chain check of a whole stream, fed its lines in order.  The first
 * problem is kept (broken, first_bad_seq, detail) and every later line is
 * only counted: events 1 .. first_bad_seq - 1 are proven intact.
 */
#define AA_CHAIN_DETAIL_LEN 512

typedef struct AAChainCheck
{
	uint64_t	verified;		/* lines proven to be links of the chain */
	uint64_t	last_seq;		/* seq of the last verified line; 0: none */
	char		prev_hash[AA_HASH_HEX_LEN + 1];
	bool		broken;
	uint64_t	first_bad_seq;
	char		detail[AA_CHAIN_DETAIL_LEN];

	/*
	 * Gap lines among the verified lines: links of an intact chain that
	 * say events were lost.  line_gap is the last verified line's, if it
	 * was one (so a caller can report each as it passes).
	 */
	uint64_t	gaps;
	uint64_t	first_gap_seq;
	AAGap		first_gap;
	bool		line_is_gap;
	AAGap		line_gap;

	/*
	 * A stream whose oldest files were removed starts after seq 1: it is
	 * accepted if start_ok (set by the caller; NULL: never) vouches for its
	 * first line's seq and prev_hash -- a digest of the line before it
	 * (common/digest.c).  first_seq is where the verified lines start.
	 */
	bool		(*start_ok) (void *arg, uint64_t seq, const char *prev_hash);
	void	   *start_arg;
	uint64_t	first_seq;
} AAChainCheck;

extern void aa_chain_init(AAChainCheck *c);
extern bool aa_chain_line(AAChainCheck *c, const char *file, int64_t lineno,
						  const char *text, size_t len);
extern void aa_chain_incomplete_file(AAChainCheck *c, const char *file,
									 int64_t lineno, size_t bytes);
extern void aa_chain_gap_note(const AAChainCheck *c, char *out, size_t size);

#endif							/* AA_STREAM_LINE_H */

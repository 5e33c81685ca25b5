/*-------------------------------------------------------------------------
 *
 * writer.h
 *		Declarations shared by the writer's files: the background worker
 *		that follows the WAL (writer.c) and the delivered stream it appends
 *		to (stream.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_WRITER_H
#define AA_WRITER_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

#include "common/stream_format.h"

/* writer.c: the background worker */
extern void aa_register_writer(void);

/*
 * stream.c: the delivered stream.  Everything here returns false with
 * *err set (palloc'd) on an I/O failure instead of throwing, so the writer
 * can report, back off and retry; nothing is lost or half-written: a failed
 * append leaves the files and the position exactly as before it.
 */
typedef struct AAStreamPos
{
	uint64		seq;			/* seq of the last durable event; 0: none */
	XLogRecPtr	commit_lsn;		/* its commit LSN */
	int			events_at_lsn;	/* trailing events of that commit in the stream */
	char		hash[65];		/* its hash; 64 zeros before the first */
} AAStreamPos;

extern bool aa_stream_open(char **err);
extern void aa_stream_position(AAStreamPos *pos);
extern bool aa_stream_append(const char *event, int len, XLogRecPtr commit_lsn,
							 TimestampTz committed_at, bool first_of_commit,
							 char **err);
extern bool aa_stream_sync(char **err);
extern bool aa_stream_needs_reopen(void);
extern void aa_stream_close(void);
extern const char *aa_stream_current_file(void);
extern uint64 aa_stream_bytes_written(void);
extern bool aa_is_hash_hex(const char *s);
extern void aa_chain_hash(const char *prev_hash, const char *text, size_t len,
						  char *hex);

#endif							/* AA_WRITER_H */

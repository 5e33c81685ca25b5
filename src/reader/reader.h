/*-------------------------------------------------------------------------
 *
 * reader.h
 *		Declarations shared by the SQL readers of the stream: the line
 *		reader over the file sink's files (files.c), log_stream() and
 *		history() (log_stream.c) and verify() (verify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_READER_H
#define AA_READER_H

#include "fmgr.h"
#include "utils/jsonb.h"

/*
 * Reading the stream's files one complete line at a time.  The buffer
 * holds buf[start..end) of unread bytes of the current file; it grows only
 * for a line longer than itself.
 */
typedef struct LineReader
{
	char	  **files;			/* names (no directory), in stream order */
	int			nfiles;
	int			fileno;			/* index of the open file; -1 before */
	char	   *dir;			/* the directory, as configured */
	int			fd;				/* open file, or -1 */
	char	   *path;			/* its path */
	int64		lineno;			/* line number in the current file */
	char	   *buf;
	size_t		bufsize;
	size_t		start;
	size_t		end;
	bool		eof;			/* read() of the current file returned 0 */
	bool		partial;		/* the file ended with an incomplete line */
} LineReader;

extern void aa_reader_init(LineReader *r);
extern void aa_reader_close_file(LineReader *r);
extern bool aa_reader_next_file(LineReader *r);
extern bool aa_reader_line_in_file(LineReader *r, char **line, size_t *len);
extern bool aa_reader_next_line(LineReader *r, char **line, size_t *len);

/* verify.c: verify() and, with digests, verify(digests) (digest.c) */
struct AADigestCheck;
extern Datum aa_verify_stream(FunctionCallInfo fcinfo, struct AADigestCheck *dc);

/* line_jsonb.c: a line as the jsonb event of log_stream()/history() */
extern Jsonb *aa_line_to_jsonb(char *line, size_t len, const char *file,
							   int64 lineno, bool *readable);

#endif							/* AA_READER_H */

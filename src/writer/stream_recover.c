/*-------------------------------------------------------------------------
 *
 * stream_recover.c
 *		Recovering the stream's position from its current file after a
 *		restart or a crash: the last complete, intact lines and the commit
 *		they belong to.
 *
 * A crash can leave a torn line at the end of the file (blocks allocated
 * but never written read as zeros); everything from the first torn line on
 * never reached an fsync and is cut, and the writer redelivers it from the
 * WAL.  A line that is not torn but invalid, or intact lines that do not
 * chain, are reported, not repaired: the file was changed after writing.
 *
 * Lines are parsed by common/stream_line.c, like everywhere else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "common/sha256.h"
#include "common/stream_line.h"
#include "writer/writer.h"

/* bytes of a line's end read to parse its trailing keys */
#define TAIL_READ_SIZE	512

/* chunk size for reading files backwards during recovery */
#define SCAN_CHUNK		65536

/* One complete line's trailing keys, as read back during recovery. */
typedef struct ChainLine
{
	uint64		seq;
	XLogRecPtr	lsn;
	char		prev_hash[AA_HASH_HEX_LEN + 1];
	char		hash[AA_HASH_HEX_LEN + 1];
	bool		gap;			/* a gap line (AALine.gap) */
} ChainLine;

/* Reads a file backwards in chunks, keeping the last chunk. */
typedef struct BackReader
{
	int			fd;
	const char *path;
	char	   *buf;
	off_t		buf_start;
	int			buf_len;
} BackReader;

typedef enum LineStatus
{
	LINE_OK,
	LINE_TORN,					/* has NUL bytes: never completely written */
	LINE_INVALID				/* not ours, or altered after writing */
} LineStatus;

/* pread() exactly len bytes at offset; a short file is an error. */
static bool
read_exact(int fd, const char *path, char *buf, size_t len, off_t offset,
		   char **err)
{
	while (len > 0)
	{
		ssize_t		n = pread(fd, buf, len, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			*err = psprintf("could not read file \"%s\": %m", path);
			return false;
		}
		if (n == 0)
		{
			*err = psprintf("could not read file \"%s\": unexpected end of file",
							path);
			return false;
		}
		buf += n;
		len -= n;
		offset += n;
	}
	return true;
}

/*
 * The offset of the last '\n' before offset `before`, or -1 if there is
 * none.  Successive calls walk a file backwards line by line, so the chunk
 * read last is kept and searched first.
 */
static bool
back_find_newline(BackReader *r, off_t before, off_t *found, char **err)
{
	off_t		pos = before;

	while (pos > 0)
	{
		int			i;

		if (!(r->buf_len > 0 && pos > r->buf_start &&
			  pos <= r->buf_start + r->buf_len))
		{
			off_t		start = pos > SCAN_CHUNK ? pos - SCAN_CHUNK : 0;

			if (!read_exact(r->fd, r->path, r->buf, pos - start, start, err))
				return false;
			r->buf_start = start;
			r->buf_len = pos - start;
		}
		for (i = (int) (pos - r->buf_start) - 1; i >= 0; i--)
		{
			if (r->buf[i] == '\n')
			{
				*found = r->buf_start + i;
				return true;
			}
		}
		pos = r->buf_start;
	}
	*found = -1;
	return true;
}

/* Whether [start, end) of the file contains a NUL byte. */
static bool
has_nul(int fd, const char *path, off_t start, off_t end, bool *found,
		char **err)
{
	char		chunk[8192];
	off_t		off;

	*found = false;
	for (off = start; off < end;)
	{
		int			m = (int) Min(end - off, (off_t) sizeof(chunk));

		if (!read_exact(fd, path, chunk, m, off, err))
			return false;
		if (memchr(chunk, '\0', m) != NULL)
		{
			*found = true;
			return true;
		}
		off += m;
	}
	return true;
}

/*
 * Read back one complete line [start, end) (end is its '\n'): parse the
 * keys the writer added (common/stream_line.c) and recompute its hash.
 *
 * A line with NUL bytes is torn: after a crash, blocks that were allocated
 * but never written read as zeros, and that is the only way a crash can
 * leave a '\n'-terminated line that we did not write whole.  Anything else
 * that does not parse or does not hash to its own "hash" was changed after
 * it was written, and is reported rather than repaired.
 */
static bool
read_line(int fd, const char *path, off_t start, off_t end,
		  ChainLine *line, LineStatus *status, char **err)
{
	char		tail[TAIL_READ_SIZE + 1];
	char		chunk[8192];
	off_t		len = end - start;
	int			n;
	AALine		parsed;
	AASha256	ctx;
	char		hash[AA_HASH_HEX_LEN + 1];
	off_t		off;
	off_t		hashed_end;
	bool		nul;

	*status = LINE_INVALID;
	n = (int) Min(len, TAIL_READ_SIZE);
	if (n > 0 && !read_exact(fd, path, tail, n, end - n, err))
		return false;
	tail[n] = '\0';
	if (strlen(tail) != (size_t) n)
	{
		*status = LINE_TORN;
		return true;
	}
	if (!aa_line_parse(tail, n, &parsed))
		goto malformed;
	line->seq = parsed.seq;
	line->lsn = parsed.lsn;
	line->gap = parsed.gap;
	memcpy(line->prev_hash, parsed.prev_hash, AA_HASH_HEX_LEN);
	line->prev_hash[AA_HASH_HEX_LEN] = '\0';
	memcpy(line->hash, parsed.hash, AA_HASH_HEX_LEN);
	line->hash[AA_HASH_HEX_LEN] = '\0';

	/* the line must hash to its own hash */
	hashed_end = end - AA_CHAIN_SUFFIX_LEN;
	aa_sha256_init(&ctx);
	aa_sha256_update(&ctx, line->prev_hash, AA_HASH_HEX_LEN);
	for (off = start; off < hashed_end;)
	{
		int			m = (int) Min(hashed_end - off, (off_t) sizeof(chunk));

		if (!read_exact(fd, path, chunk, m, off, err))
			return false;
		if (memchr(chunk, '\0', m) != NULL)
		{
			*status = LINE_TORN;
			return true;
		}
		aa_sha256_update(&ctx, chunk, m);
		off += m;
	}
	aa_sha256_final_hex(&ctx, hash);
	*status = strcmp(hash, line->hash) == 0 ? LINE_OK : LINE_INVALID;
	return true;

malformed:
	if (!has_nul(fd, path, start, end, &nul, err))
		return false;
	*status = nul ? LINE_TORN : LINE_INVALID;
	return true;
}

/*
 * Recover the stream position from the current file.
 *
 * Everything after the last '\n' is a torn line and is cut.  Then the
 * trailing lines are read back from the end: the last line, the earlier
 * lines of its commit (to count events_at_lsn) and the line before them.
 * Each must be intact (its own hash), and each must chain to the next.  A
 * torn line (see read_line) can only be data that never reached an fsync,
 * and so can anything after it, so the file is cut at the torn line and
 * the check starts again; the caller redelivers from the resulting
 * position.  A line that is not torn but invalid, or intact lines that do
 * not chain (an edited or reordered file), are an error: repairing that is
 * for a human, and cutting it would hide it.
 *
 * When the walk reaches the beginning of the file, the file's first line
 * must chain to the position recorded when the file was started, and a
 * commit that continues from the previous file counts its events there too.
 * Whether the last line is a gap line is told from its end as well
 * (common/stream_line.c), for the writer to know the loss is recorded.
 */
bool
aa_recover_tail(int fd, const char *path, off_t size, const AAStreamPos *start,
			 AAStreamPos *pos, off_t *valid_end, char **err)
{
	BackReader r;
	off_t		end = size;
	off_t		nl;
	bool		ok = false;

	r.fd = fd;
	r.path = path;
	r.buf = palloc(SCAN_CHUNK);
	r.buf_start = 0;
	r.buf_len = 0;
	memset(pos, 0, sizeof(*pos));

	for (;;)
	{
		off_t		line_end;
		ChainLine	next;
		bool		have_next = false;
		bool		cut = false;

		if (!back_find_newline(&r, end, &nl, err))
			goto done;
		end = nl + 1;
		if (end == 0)
		{
			*pos = *start;
			break;
		}

		line_end = end - 1;
		for (;;)
		{
			ChainLine	line;
			off_t		line_start;
			LineStatus	status;

			if (!back_find_newline(&r, line_end, &nl, err))
				goto done;
			line_start = nl + 1;
			if (!read_line(fd, path, line_start, line_end, &line, &status, err))
				goto done;
			if (status == LINE_TORN)
			{
				end = line_start;
				cut = true;
				break;
			}
			if (status == LINE_INVALID)
			{
				*err = psprintf("audit stream file \"%s\" is corrupt: the line at offset "
								INT64_FORMAT " is not a valid stream line or does not match its hash",
								path, (int64) line_start);
				goto done;
			}
			if (have_next &&
				(strcmp(line.hash, next.prev_hash) != 0 ||
				 line.seq + 1 != next.seq))
			{
				*err = psprintf("audit stream file \"%s\" is corrupt: the line at offset "
								INT64_FORMAT " does not chain to the line before it",
								path, (int64) (line_end + 1));
				goto done;
			}
			if (!have_next)
			{
				pos->seq = line.seq;
				pos->commit_lsn = line.lsn;
				pos->events_at_lsn = 1;
				memcpy(pos->hash, line.hash, AA_HASH_HEX_LEN + 1);
				pos->after_gap = line.gap;
			}
			else if (line.lsn == pos->commit_lsn)
				pos->events_at_lsn++;
			else
				break;			/* the line before the last commit: checked */
			next = line;
			have_next = true;

			if (line_start == 0)
			{
				if (strcmp(start->hash, line.prev_hash) != 0 ||
					start->seq + 1 != line.seq)
				{
					*err = psprintf("audit stream file \"%s\" does not continue the stream at seq "
									UINT64_FORMAT " recorded in \"%s\"",
									path, start->seq, AA_STATE_FILE);
					goto done;
				}
				if (start->commit_lsn == pos->commit_lsn)
					pos->events_at_lsn += start->events_at_lsn;
				break;
			}
			line_end = line_start - 1;
		}
		if (!cut)
			break;
	}
	*valid_end = end;
	ok = true;

done:
	pfree(r.buf);
	return ok;
}

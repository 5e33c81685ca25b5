/*-------------------------------------------------------------------------
 *
 * stream.c
 *		The file sink: the delivered stream as JSON Lines files, its seq and
 *		hash chain, rotation, durability and crash recovery.
 *
 * Each delivered event becomes one line: the event object as the trigger
 * wrote it, extended with "seq", "lsn", "committed_at", "prev_hash" and
 * "hash" (SPEC sections 4 and 6).  Lines are only ever appended; a line is
 * either entirely in a file or not at all.
 *
 * The files themselves are the record of what was delivered.  A small state
 * file, $PGDATA/pg_activity_audit/stream_state, names the current file and
 * the position (seq, commit LSN, hash) the stream had when that file was
 * started; it is written durably before the first line goes into a new
 * file.  At startup the position is read back from the current file's last
 * complete line, or from the state file when the current file is still
 * empty, so a crash at any moment neither loses nor repeats an event as
 * long as the caller redelivers everything after that position.
 *
 * Every I/O failure is returned to the caller (false and a message) rather
 * than thrown: the writer reports it and retries.  A failed append leaves
 * the files and the position as they were.  A failed fsync cannot be
 * retried (the kernel may have dropped the unwritten data while reporting
 * the error), so after one the stream refuses further work until
 * aa_stream_open() has re-derived the position from what is really there.
 *
 * This file must not read WAL, decide which events are delivered or in what
 * order, or write to any other sink; the writer (writer.c) does that.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "pgtime.h"
#include "storage/fd.h"
#include "utils/datetime.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "activity_audit.h"
#include "common/json_out.h"
#include "common/sha256.h"
#include "guc.h"
#include "writer/writer.h"

#define STATE_FILE		AA_STATE_DIR "/stream_state"
#define STATE_TMP_FILE	AA_STATE_DIR "/stream_state.tmp"
#define STATE_MAGIC		"activity_audit stream state 1"
#define STATE_MAX_SIZE	16384

#define COMMITTED_AT_KEY "\",\"committed_at\":\""

/* ,"seq":N,"lsn":"X/X","committed_at":"..." is well below this */
#define TRAILER_MAX		128

/* bytes of a line's end read to parse its trailing keys */
#define TAIL_READ_SIZE	512

/* chunk size for reading files backwards during recovery */
#define SCAN_CHUNK		65536

/* What the state file says: the current file and where it started. */
typedef struct StreamState
{
	char	   *path;			/* the current file, as opened */
	char	   *directory;		/* audit.log_directory it was started under */
	char	   *pattern;		/* audit.log_filename it was started under */
	pg_time_t	started;		/* when it was started (for rotation_age) */
	AAStreamPos start;			/* stream position when it was started */
} StreamState;

/* One complete line's trailing keys, as read back during recovery. */
typedef struct ChainLine
{
	uint64		seq;
	XLogRecPtr	lsn;
	char		prev_hash[AA_HASH_HEX_LEN + 1];
	char		hash[AA_HASH_HEX_LEN + 1];
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

typedef enum StartResult
{
	START_OK,
	START_TAKEN,				/* a non-empty file of that name exists */
	START_FAILED
} StartResult;

/*
 * The open stream.  Strings live in TopMemoryContext; the file descriptor
 * is a long-lived kernel FD reserved with fd.c.
 */
static bool stream_ready = false;
static char *stream_broken = NULL;	/* why the stream must be reopened */
static int	cur_fd = -1;
static char *cur_path = NULL;
static char *cur_name = NULL;	/* the file name part of cur_path */
static char *cur_directory = NULL;
static char *cur_pattern = NULL;
static pg_time_t cur_started = 0;
static off_t cur_size = 0;

/*
 * Lines appended but not yet written to the current file.  Writing each
 * line with its own system call would cost more than everything else the
 * writer does per event; the buffer goes to the file when it is full, before
 * a rotation and at every sync.  A failed write leaves it in place (and the
 * file cut back to its last whole line), so the write can be retried.
 */
#define WBUF_FLUSH_AT	(256 * 1024)
static StringInfoData wbuf;
static bool wbuf_ready = false;
static bool cur_dirty = false;	/* written since the last fsync */

/*
 * The stream is written once and read rarely, so once durable it need not
 * stay in the page cache: each sync drops the file's pages older than the
 * last CACHE_KEEP bytes (kept so that a shipper tailing the file still reads
 * from memory), and a rotation drops the file it leaves.  Besides sparing
 * the cache the database needs, this lets the kernel recycle the same pages
 * for the next lines instead of taking fresh memory for every megabyte
 * written, which was the writer's largest cost.
 */
#define CACHE_KEEP		((off_t) 16 * 1024 * 1024)
#define CACHE_DROP_STEP ((off_t) 4 * 1024 * 1024)
static off_t cur_dropped = 0;	/* pages before this offset were dropped */

/*
 * A commit of millions of events is made durable in parts of SYNC_EVERY
 * bytes, so that its pages can be dropped as it goes rather than all filling
 * the cache until its end.  Safe at any point: recovery resumes inside a
 * commit (see recover_tail).
 */
#define SYNC_EVERY		((off_t) 16 * 1024 * 1024)
static off_t cur_synced = 0;	/* size at the last fsync */
static AAStreamPos cur_pos;
static uint64 total_bytes = 0;

/* the digest of the line being written or checked */
static AASha256 sha_ctx;
static bool sha_chosen = false;

/*
 * Start a line's digest with its prev_hash.  The first use picks the SHA-256
 * code (see sha256.c); a failed self-test means this build cannot be
 * trusted to write or check a chain.
 */
static void
hash_begin(const char *prev_hash)
{
	if (!sha_chosen)
	{
		if (aa_sha256_choose(1) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("SHA-256 self-test failed"),
					 errhint("The activity_audit library is miscompiled; rebuild it.")));
		sha_chosen = true;
	}
	aa_sha256_init(&sha_ctx);
	aa_sha256_update(&sha_ctx, prev_hash, AA_HASH_HEX_LEN);
}

static void
hash_add(const char *data, size_t len)
{
	aa_sha256_update(&sha_ctx, data, len);
}

/* Finish into lowercase hex, the form the chain stores. */
static void
hash_end(char *hex)
{
	aa_sha256_final_hex(&sha_ctx, hex);
}

/*
 * The keys the stream adds before the chain: [,]"seq":N,"lsn":"X/X",
 * "committed_at":"...".  Formatted by hand: printf-style formatting was the
 * largest cost per event.  All events of a commit share committed_at, so
 * its text is kept from the previous event.
 */
static int
format_trailer(char *out, bool comma, uint64 seq, XLogRecPtr lsn,
			   TimestampTz committed_at)
{
	static TimestampTz last_ts = DT_NOBEGIN;
	static char last_text[AA_UTC_TEXT_LEN + 1];
	static const char hexdig[] = "0123456789ABCDEF";
	char	   *t = out;
	int			half;

	if (committed_at != last_ts)
	{
		aa_format_utc(committed_at, last_text);
		last_ts = committed_at;
	}
	if (comma)
		*t++ = ',';
	memcpy(t, "\"seq\":", 6);
	t += 6;
	t += pg_ulltoa_n(seq, t);
	memcpy(t, ",\"lsn\":\"", 8);
	t += 8;
	for (half = 0; half < 2; half++)
	{
		uint32		v = half == 0 ? (uint32) (lsn >> 32) : (uint32) lsn;
		char		digits[8];
		int			n = 0;

		do
		{
			digits[n++] = hexdig[v & 0xF];
			v >>= 4;
		} while (v != 0);
		while (n > 0)
			*t++ = digits[--n];
		if (half == 0)
			*t++ = '/';
	}
	memcpy(t, "\",\"committed_at\":\"", 18);
	t += 18;
	memcpy(t, last_text, AA_UTC_TEXT_LEN);
	t += AA_UTC_TEXT_LEN;
	*t++ = '"';
	return t - out;
}

/* Remember why the stream cannot go on; kept until aa_stream_open(). */
static void
mark_broken(const char *reason)
{
	if (stream_broken)
		pfree(stream_broken);
	stream_broken = MemoryContextStrdup(TopMemoryContext, reason);
}

/*
 * fsync a file or directory by name.  As in fd.c, some systems refuse to
 * fsync a directory; that is not an error.
 */
static bool
fsync_path(const char *path, bool isdir, char **err)
{
	int			fd;
	int			save_errno;

	fd = OpenTransientFile(path, (isdir ? O_RDONLY : O_RDWR) | PG_BINARY);
	if (fd < 0)
	{
		*err = psprintf("could not open \"%s\": %m", path);
		return false;
	}
	if (pg_fsync(fd) != 0 && !(isdir && (errno == EBADF || errno == EINVAL)))
	{
		save_errno = errno;
		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not fsync \"%s\": %m", path);
		return false;
	}
	CloseTransientFile(fd);
	return true;
}

/*
 * Make sure a directory exists, creating it (and its parents) owner-only
 * and making its name durable, so files created in it survive a crash.
 */
static bool
ensure_directory(const char *dir, char **err)
{
	struct stat st;
	char	   *copy;
	char	   *parent;

	if (stat(dir, &st) == 0)
	{
		if (!S_ISDIR(st.st_mode))
		{
			*err = psprintf("\"%s\" is not a directory", dir);
			return false;
		}
		return true;
	}
	if (errno != ENOENT)
	{
		*err = psprintf("could not stat directory \"%s\": %m", dir);
		return false;
	}
	copy = pstrdup(dir);
	if (pg_mkdir_p(copy, S_IRWXU) != 0 && errno != EEXIST)
	{
		*err = psprintf("could not create directory \"%s\": %m", dir);
		pfree(copy);
		return false;
	}
	pfree(copy);
	parent = pstrdup(dir);
	get_parent_directory(parent);
	if (!fsync_path(parent[0] ? parent : ".", true, err))
		return false;
	pfree(parent);
	return true;
}

/* write() all of a buffer, looping over short writes. */
static bool
write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			if (n == 0)
				errno = ENOSPC;
			return false;
		}
		data += n;
		len -= n;
	}
	return true;
}

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
 * Write the state file the way durable_rename() would (temporary file,
 * fsync, rename, fsync of the directory), reporting instead of throwing.
 * After this returns true, a crash recovers into the new file.
 */
static bool
write_state(const StreamState *st, char **err)
{
	StringInfoData buf;
	int			fd;
	int			save_errno;
	bool		created_dir = false;

	if (mkdir(AA_STATE_DIR, S_IRWXU) == 0)
		created_dir = true;
	else if (errno != EEXIST)
	{
		*err = psprintf("could not create directory \"%s\": %m", AA_STATE_DIR);
		return false;
	}
	if (created_dir && !fsync_path(".", true, err))
		return false;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n", STATE_MAGIC);
	appendStringInfo(&buf, "started " INT64_FORMAT "\n", (int64) st->started);
	appendStringInfo(&buf, "seq " UINT64_FORMAT "\n", st->start.seq);
	appendStringInfo(&buf, "lsn %X/%X\n", LSN_FORMAT_ARGS(st->start.commit_lsn));
	appendStringInfo(&buf, "events_at_lsn %d\n", st->start.events_at_lsn);
	appendStringInfo(&buf, "hash %s\n", st->start.hash);
	appendStringInfo(&buf, "directory %s\n", st->directory);
	appendStringInfo(&buf, "pattern %s\n", st->pattern);
	appendStringInfo(&buf, "file %s\n", st->path);

	fd = OpenTransientFilePerm(STATE_TMP_FILE,
							   O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		*err = psprintf("could not create file \"%s\": %m", STATE_TMP_FILE);
		pfree(buf.data);
		return false;
	}
	if (!write_all(fd, buf.data, buf.len))
	{
		save_errno = errno;
		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not write file \"%s\": %m", STATE_TMP_FILE);
		pfree(buf.data);
		return false;
	}
	pfree(buf.data);
	if (pg_fsync(fd) != 0)
	{
		save_errno = errno;
		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not fsync file \"%s\": %m", STATE_TMP_FILE);
		return false;
	}
	if (CloseTransientFile(fd) != 0)
	{
		*err = psprintf("could not close file \"%s\": %m", STATE_TMP_FILE);
		return false;
	}
	if (rename(STATE_TMP_FILE, STATE_FILE) != 0)
	{
		*err = psprintf("could not rename file \"%s\" to \"%s\": %m",
						STATE_TMP_FILE, STATE_FILE);
		return false;
	}
	return fsync_path(AA_STATE_DIR, true, err);
}

/* Parse "X/X" as pg_lsn prints it; end is set past it. */
static bool
parse_lsn(const char *s, XLogRecPtr *lsn, const char **end)
{
	uint64		hi = 0;
	uint64		lo = 0;
	int			n;

	for (n = 0; n < 8 && isxdigit((unsigned char) *s); n++, s++)
		hi = hi * 16 + (isdigit((unsigned char) *s) ? *s - '0' :
						(tolower((unsigned char) *s) - 'a' + 10));
	if (n == 0 || *s != '/')
		return false;
	s++;
	for (n = 0; n < 8 && isxdigit((unsigned char) *s); n++, s++)
		lo = lo * 16 + (isdigit((unsigned char) *s) ? *s - '0' :
						(tolower((unsigned char) *s) - 'a' + 10));
	if (n == 0)
		return false;
	*lsn = (hi << 32) | lo;
	*end = s;
	return true;
}

/* Parse a decimal uint64 without sign or overflow; end is set past it. */
static bool
parse_uint64(const char *s, uint64 *value, const char **end)
{
	uint64		v = 0;
	const char *p = s;

	while (isdigit((unsigned char) *p))
	{
		if (v > (PG_UINT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
		p++;
	}
	if (p == s)
		return false;
	*value = v;
	*end = p;
	return true;
}

/* A stored hash: exactly 64 lowercase hex digits. */
bool
aa_is_hash_hex(const char *s)
{
	int			i;

	for (i = 0; i < AA_HASH_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * Read the state file.  *found is false when there is none (a stream that
 * never had a file).  A state file that exists but cannot be understood is
 * an error: guessing could repeat or skip events.
 */
static bool
read_state(StreamState *st, bool *found, char **err)
{
	int			fd;
	char	   *buf;
	ssize_t		len;
	char	   *line;
	char	   *next;
	int			seen = 0;

	*found = false;
	fd = OpenTransientFile(STATE_FILE, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return true;
		*err = psprintf("could not open file \"%s\": %m", STATE_FILE);
		return false;
	}
	buf = palloc(STATE_MAX_SIZE + 1);
	len = read(fd, buf, STATE_MAX_SIZE + 1);
	if (len < 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not read file \"%s\": %m", STATE_FILE);
		return false;
	}
	CloseTransientFile(fd);
	if (len > STATE_MAX_SIZE)
	{
		*err = psprintf("file \"%s\" is too large", STATE_FILE);
		return false;
	}
	buf[len] = '\0';

	memset(st, 0, sizeof(*st));
	line = buf;
	for (; (next = strchr(line, '\n')) != NULL; line = next + 1)
	{
		char	   *value;
		const char *end;
		bool		ok = true;

		*next = '\0';
		if (seen == 0)
		{
			if (strcmp(line, STATE_MAGIC) != 0)
				break;
			seen |= 1;
			continue;
		}
		value = strchr(line, ' ');
		if (value == NULL)
			break;
		*value++ = '\0';
		if (strcmp(line, "started") == 0)
		{
			uint64		v;

			ok = parse_uint64(value, &v, &end) && *end == '\0';
			st->started = (pg_time_t) v;
			seen |= 2;
		}
		else if (strcmp(line, "seq") == 0)
		{
			ok = parse_uint64(value, &st->start.seq, &end) && *end == '\0';
			seen |= 4;
		}
		else if (strcmp(line, "lsn") == 0)
		{
			ok = parse_lsn(value, &st->start.commit_lsn, &end) && *end == '\0';
			seen |= 8;
		}
		else if (strcmp(line, "events_at_lsn") == 0)
		{
			uint64		v;

			ok = parse_uint64(value, &v, &end) && *end == '\0' && v <= PG_INT32_MAX;
			st->start.events_at_lsn = (int) v;
			seen |= 16;
		}
		else if (strcmp(line, "hash") == 0)
		{
			ok = strlen(value) == AA_HASH_HEX_LEN && aa_is_hash_hex(value);
			if (ok)
				memcpy(st->start.hash, value, AA_HASH_HEX_LEN + 1);
			seen |= 32;
		}
		else if (strcmp(line, "directory") == 0)
		{
			st->directory = pstrdup(value);
			seen |= 64;
		}
		else if (strcmp(line, "pattern") == 0)
		{
			st->pattern = pstrdup(value);
			seen |= 128;
		}
		else if (strcmp(line, "file") == 0)
		{
			ok = value[0] != '\0';
			st->path = pstrdup(value);
			seen |= 256;
		}
		if (!ok)
		{
			seen = -1;
			break;
		}
	}
	pfree(buf);
	if (seen != 511 || *line != '\0')
	{
		*err = psprintf("file \"%s\" is corrupt", STATE_FILE);
		return false;
	}
	*found = true;
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
 * trailing keys we wrote and recompute its hash.
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
	const char *s;
	const char *p;
	const char *key;
	const char *seqkey;
	char		hash[AA_HASH_HEX_LEN + 1];
	off_t		off;
	off_t		hashed_end;
	bool		nul;

	*status = LINE_INVALID;
	if (len < (off_t) (AA_CHAIN_SUFFIX_LEN + sizeof(COMMITTED_AT_KEY) + AA_UTC_TEXT_LEN + 16))
		goto malformed;
	n = (int) Min(len, TAIL_READ_SIZE);
	if (!read_exact(fd, path, tail, n, end - n, err))
		return false;
	tail[n] = '\0';
	if (strlen(tail) != (size_t) n)
	{
		*status = LINE_TORN;
		return true;
	}

	/* the fixed-size chain suffix */
	s = tail + n - AA_CHAIN_SUFFIX_LEN;
	if (memcmp(s, AA_PREV_HASH_KEY, sizeof(AA_PREV_HASH_KEY) - 1) != 0)
		goto malformed;
	p = s + sizeof(AA_PREV_HASH_KEY) - 1;
	if (!aa_is_hash_hex(p))
		goto malformed;
	memcpy(line->prev_hash, p, AA_HASH_HEX_LEN);
	line->prev_hash[AA_HASH_HEX_LEN] = '\0';
	p += AA_HASH_HEX_LEN;
	if (memcmp(p, AA_HASH_KEY, sizeof(AA_HASH_KEY) - 1) != 0)
		goto malformed;
	p += sizeof(AA_HASH_KEY) - 1;
	if (!aa_is_hash_hex(p))
		goto malformed;
	memcpy(line->hash, p, AA_HASH_HEX_LEN);
	line->hash[AA_HASH_HEX_LEN] = '\0';
	p += AA_HASH_HEX_LEN;
	if (strcmp(p, "\"}") != 0)
		goto malformed;

	/* "seq":N,"lsn":"X/X","committed_at":"<27>" right before it */
	key = s - 1 - AA_UTC_TEXT_LEN - (sizeof(COMMITTED_AT_KEY) - 1);
	if (key < tail || s[-1] != '"' ||
		memcmp(key, COMMITTED_AT_KEY, sizeof(COMMITTED_AT_KEY) - 1) != 0)
		goto malformed;
	seqkey = NULL;
	for (p = key - 1; p >= tail; p--)
	{
		if (strncmp(p, "\"seq\":", 6) == 0)
		{
			seqkey = p;
			break;
		}
	}
	if (seqkey == NULL || seqkey == tail ||
		(seqkey[-1] != ',' && seqkey[-1] != '{'))
		goto malformed;
	if (!parse_uint64(seqkey + 6, &line->seq, &p) ||
		strncmp(p, ",\"lsn\":\"", 8) != 0 ||
		!parse_lsn(p + 8, &line->lsn, &p) || p != key)
		goto malformed;

	/* the line must hash to its own hash */
	hashed_end = end - AA_CHAIN_SUFFIX_LEN;
	hash_begin(line->prev_hash);
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
		hash_add(chunk, m);
		off += m;
	}
	hash_end(hash);
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
 */
static bool
recover_tail(int fd, const char *path, off_t size, const AAStreamPos *start,
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
									path, start->seq, STATE_FILE);
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

/* Forget the open file (not the position, which survives a close). */
static void
forget_current(void)
{
	if (cur_fd >= 0)
	{
		close(cur_fd);
		ReleaseExternalFD();
	}
	cur_fd = -1;
	if (cur_path)
		pfree(cur_path);
	if (cur_directory)
		pfree(cur_directory);
	if (cur_pattern)
		pfree(cur_pattern);
	cur_path = cur_directory = cur_pattern = NULL;
	cur_name = NULL;
	cur_size = 0;
	cur_dirty = false;
	cur_dropped = 0;
	cur_synced = 0;
	if (wbuf_ready)
		resetStringInfo(&wbuf);
}

/* Adopt an open file as the current one; the strings become ours. */
static void
set_current(int fd, char *path, char *directory, char *pattern,
			pg_time_t started, off_t size)
{
	char	   *slash;

	if (!wbuf_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&wbuf);
		enlargeStringInfo(&wbuf, WBUF_FLUSH_AT);
		MemoryContextSwitchTo(old);
		wbuf_ready = true;
	}
	cur_fd = fd;
	cur_path = path;
	slash = strrchr(path, '/');
	cur_name = slash ? slash + 1 : path;
	cur_directory = directory;
	cur_pattern = pattern;
	cur_started = started;
	cur_size = size;
	cur_dirty = false;
	cur_dropped = 0;
	cur_synced = size;
}

/*
 * Advise the kernel to drop the current file's durable pages but the last
 * CACHE_KEEP bytes, or all of them when "all" (a file left by rotation).
 * Only advice: a failure changes nothing and is ignored.  Call only right
 * after an fsync, so no dirty page is involved.
 */
static void
drop_cached(bool all)
{
#if defined(USE_POSIX_FADVISE) && defined(POSIX_FADV_DONTNEED)
	off_t		upto = all ? cur_size : cur_size - CACHE_KEEP;

	if (cur_fd < 0 || upto <= cur_dropped ||
		(!all && upto - cur_dropped < CACHE_DROP_STEP))
		return;
	(void) posix_fadvise(cur_fd, cur_dropped, upto - cur_dropped,
						 POSIX_FADV_DONTNEED);
	cur_dropped = upto;
#else
	(void) all;
#endif
}

/*
 * After an fsync of the current file: a file removed from the directory (by
 * hand, by a clean-up job) would swallow every later event unseen.  Checked
 * before the position moves, so that what went into it since the last sync
 * is read from the WAL again once the stream is reopened.
 */
static bool
check_not_removed(char **err)
{
	struct stat sb;

	if (fstat(cur_fd, &sb) == 0 && sb.st_nlink == 0)
	{
		*err = psprintf("audit stream file \"%s\" was removed while the writer was appending to it",
						cur_path);
		mark_broken(*err);
		return false;
	}
	return true;
}

/* Write the buffered lines to the current file (see wbuf). */
static bool
flush_wbuf(char **err)
{
	size_t		done = 0;

	if (!wbuf_ready || wbuf.len == 0)
		return true;
	while (done < (size_t) wbuf.len)
	{
		ssize_t		n = write(cur_fd, wbuf.data + done, wbuf.len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			int			save_errno = (n == 0) ? ENOSPC : errno;

			*err = NULL;
			if (done > 0 && ftruncate(cur_fd, cur_size) != 0)
			{
				errno = save_errno;
				*err = psprintf("could not write to audit stream file \"%s\" and could not remove the partial lines: %m",
								cur_path);
				mark_broken(*err);
			}
			errno = save_errno;
			if (*err == NULL)
				*err = psprintf("could not write to audit stream file \"%s\": %m",
								cur_path);
			return false;
		}
		done += n;
	}
	cur_size += wbuf.len;
	cur_dirty = true;
	resetStringInfo(&wbuf);
	return true;
}

/*
 * The chain's hash of a line: SHA-256 of prev_hash followed by the line's
 * text up to its ,"prev_hash" key, as lowercase hex into hex[65].  Shared
 * with verify() so that writing and checking cannot disagree.
 */
void
aa_chain_hash(const char *prev_hash, const char *text, size_t len, char *hex)
{
	hash_begin(prev_hash);
	hash_add(text, len);
	hash_end(hex);
}

/*
 * Open the stream and recover its position from the files.  May be called
 * again at any time (it closes first); after a failed aa_stream_sync() it
 * must be, and the caller must then take the position again.
 */
bool
aa_stream_open(char **err)
{
	StreamState st;
	bool		found;
	int			fd;
	struct stat sb;
	AAStreamPos pos;
	off_t		valid_end;

	aa_stream_close();
	if (stream_broken)
	{
		pfree(stream_broken);
		stream_broken = NULL;
	}
	memset(&cur_pos, 0, sizeof(cur_pos));
	memcpy(cur_pos.hash, AA_ZERO_HASH, AA_HASH_HEX_LEN + 1);

	if (!read_state(&st, &found, err))
		return false;
	if (!found)
	{
		stream_ready = true;
		return true;
	}

	fd = BasicOpenFile(st.path, O_RDWR | O_APPEND | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			*err = psprintf("audit stream file \"%s\" named in \"%s\" does not exist: put it back, or move the stream's other files away and remove \"%s\" to start a new stream",
							st.path, STATE_FILE, STATE_FILE);
		else
			*err = psprintf("could not open audit stream file \"%s\": %m",
							st.path);
		goto fail;
	}
	ReserveExternalFD();
	if (fstat(fd, &sb) != 0)
	{
		*err = psprintf("could not stat audit stream file \"%s\": %m", st.path);
		goto fail_fd;
	}
	if (!recover_tail(fd, st.path, sb.st_size, &st.start, &pos, &valid_end, err))
		goto fail_fd;
	if (valid_end < sb.st_size)
	{
		if (ftruncate(fd, valid_end) != 0)
		{
			*err = psprintf("could not truncate audit stream file \"%s\": %m",
							st.path);
			goto fail_fd;
		}
		if (pg_fsync(fd) != 0)
		{
			*err = psprintf("could not fsync audit stream file \"%s\": %m",
							st.path);
			goto fail_fd;
		}
		ereport(LOG,
				(errmsg("discarded " INT64_FORMAT " bytes of undelivered data at the end of audit stream file \"%s\"",
						(int64) (sb.st_size - valid_end), st.path),
				 errdetail("The stream resumes after seq " UINT64_FORMAT ".",
						   pos.seq)));
	}
	set_current(fd, MemoryContextStrdup(TopMemoryContext, st.path),
				MemoryContextStrdup(TopMemoryContext, st.directory),
				MemoryContextStrdup(TopMemoryContext, st.pattern),
				st.started, valid_end);
	cur_pos = pos;
	stream_ready = true;
	return true;

fail_fd:
	close(fd);
	ReleaseExternalFD();
fail:
	return false;
}

/* The position after the last successful append. */
void
aa_stream_position(AAStreamPos *pos)
{
	*pos = cur_pos;
}

/*
 * Start a new file named `name` in audit.log_directory and make it the
 * current one.  Before the state file points into it, everything before it
 * is made durable: the previous file (the state file will claim its last
 * line as the starting position), the new file's existence and its
 * directory entry.
 */
static StartResult
start_file(const char *name, pg_time_t now, char **err)
{
	char	   *path;
	int			fd;
	bool		created = false;
	struct stat sb;
	StreamState st;
	int			save_errno;

	if (aa_log_directory == NULL || aa_log_directory[0] == '\0')
	{
		*err = pstrdup("audit.log_directory is empty");
		return START_FAILED;
	}
	if (!ensure_directory(aa_log_directory, err))
		return START_FAILED;
	path = psprintf("%s/%s", aa_log_directory, name);
	if (strchr(path, '\n') != NULL)
	{
		*err = psprintf("invalid audit stream file name \"%s\"", path);
		return START_FAILED;
	}

	if (cur_fd >= 0 && !flush_wbuf(err))
		return START_FAILED;
	if (cur_fd >= 0 && cur_dirty)
	{
		if (pg_fsync(cur_fd) != 0)
		{
			*err = psprintf("could not fsync audit stream file \"%s\": %m",
							cur_path);
			mark_broken(*err);
			return START_FAILED;
		}
		cur_dirty = false;
	}
	if (cur_fd >= 0 && !check_not_removed(err))
		return START_FAILED;
	drop_cached(true);

	fd = BasicOpenFilePerm(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | PG_BINARY,
						   (mode_t) aa_file_mode);
	if (fd >= 0)
		created = true;
	else if (errno == EEXIST)
	{
		/* an empty file left by a failed start: take it over */
		fd = BasicOpenFile(path, O_WRONLY | O_APPEND | PG_BINARY);
		if (fd >= 0 && (fstat(fd, &sb) != 0 || sb.st_size != 0))
		{
			close(fd);
			*err = psprintf("could not create audit stream file \"%s\": a non-empty file of that name exists",
							path);
			return START_TAKEN;
		}
	}
	if (fd < 0)
	{
		*err = psprintf("could not create audit stream file \"%s\": %m", path);
		return START_FAILED;
	}

	if (fchmod(fd, (mode_t) aa_file_mode) != 0)
	{
		*err = psprintf("could not set permissions of audit stream file \"%s\": %m",
						path);
		goto fail;
	}
	if (pg_fsync(fd) != 0)
	{
		*err = psprintf("could not fsync audit stream file \"%s\": %m", path);
		goto fail;
	}
	if (!fsync_path(aa_log_directory, true, err))
		goto fail;

	st.path = path;
	st.directory = aa_log_directory;
	st.pattern = aa_log_filename;
	st.started = now;
	st.start = cur_pos;
	if (!write_state(&st, err))
		goto fail;

	ReserveExternalFD();
	forget_current();
	set_current(fd, MemoryContextStrdup(TopMemoryContext, path),
				MemoryContextStrdup(TopMemoryContext, aa_log_directory),
				MemoryContextStrdup(TopMemoryContext, aa_log_filename),
				now, 0);
	pfree(path);
	return START_OK;

fail:
	save_errno = errno;
	close(fd);
	if (created)
		unlink(path);
	pfree(path);
	errno = save_errno;
	return START_FAILED;
}

/*
 * Before the first event of a commit: start a new file if there is none,
 * or if the current one is due for rotation (size, age, or a changed
 * directory or name pattern).  A new name that does not sort after the
 * current one (the same second, a clock that went back) or that is already
 * taken keeps the current file, so names stay unique and in stream order.
 */
static bool
maybe_rotate(char **err)
{
	pg_time_t	now = (pg_time_t) time(NULL);
	char		name[MAXPGPATH];
	bool		same_dir;
	StartResult res;

	if (cur_fd >= 0)
	{
		bool		due = false;

		same_dir = strcmp(cur_directory, aa_log_directory) == 0;
		if (!same_dir || strcmp(cur_pattern, aa_log_filename) != 0)
			due = true;
		else if (aa_rotation_size > 0 &&
				 cur_size + wbuf.len >= (off_t) aa_rotation_size * 1024)
			due = true;
		else if (aa_rotation_age > 0 &&
				 now - cur_started >= (pg_time_t) aa_rotation_age * SECS_PER_MINUTE)
			due = true;
		if (!due)
			return true;
	}
	else
		same_dir = false;

	if (pg_strftime(name, sizeof(name), aa_log_filename, pg_gmtime(&now)) == 0 ||
		name[0] == '\0')
	{
		*err = psprintf("could not form an audit stream file name from \"%s\"",
						aa_log_filename);
		return false;
	}
	if (cur_fd >= 0 && same_dir && strcmp(name, cur_name) <= 0)
		return true;

	res = start_file(name, now, err);
	if (res == START_TAKEN && cur_fd >= 0)
	{
		pfree(*err);
		*err = NULL;
		return true;
	}
	return res == START_OK;
}

/*
 * Append one committed event to the write buffer (see wbuf).  If the
 * buffer must be written first and that fails, the event is not added and
 * the position is not moved, so the caller can retry the same event.
 */
bool
aa_stream_append(const char *event, int len, XLogRecPtr commit_lsn,
				 TimestampTz committed_at, bool first_of_commit, char **err)
{
	char		trailer[TRAILER_MAX + AA_CHAIN_SUFFIX_LEN + 2];
	char		hash[AA_HASH_HEX_LEN + 1];
	int			body_len;
	int			i;
	int			tlen;
	int			slen;
	uint64		seq;
	size_t		total;

	if (!stream_ready)
		elog(ERROR, "audit stream is not open");
	if (stream_broken)
	{
		*err = psprintf("audit stream must be reopened: %s", stream_broken);
		return false;
	}

	/* the event is a one-line JSON object; anything else is a writer bug */
	if (len < 2 || event[0] != '{' || event[len - 1] != '}' ||
		memchr(event, '\n', len) != NULL)
		elog(ERROR, "malformed audit event of %d bytes", len);

	/*
	 * Rotate only between commits, so a commit's events are never split
	 * over two files.  Comparing the LSN as well keeps a commit together
	 * when the writer resumes in the middle of it after a crash.
	 */
	if (cur_fd < 0 ||
		(first_of_commit && commit_lsn != cur_pos.commit_lsn))
	{
		if (!maybe_rotate(err))
			return false;
	}

	/* {...} loses its '}' and gains our keys; "{}" must not get a comma */
	body_len = len - 1;
	for (i = body_len - 1; i > 0 && isspace((unsigned char) event[i]); i--)
		;
	seq = cur_pos.seq + 1;
	tlen = format_trailer(trailer, event[i] != '{', seq, commit_lsn,
						  committed_at);
	Assert(tlen > 0 && tlen < TRAILER_MAX);

	hash_begin(cur_pos.hash);
	hash_add(event, body_len);
	hash_add(trailer, tlen);
	hash_end(hash);

	{
		char	   *t = trailer + tlen;

		memcpy(t, AA_PREV_HASH_KEY, sizeof(AA_PREV_HASH_KEY) - 1);
		t += sizeof(AA_PREV_HASH_KEY) - 1;
		memcpy(t, cur_pos.hash, AA_HASH_HEX_LEN);
		t += AA_HASH_HEX_LEN;
		memcpy(t, AA_HASH_KEY, sizeof(AA_HASH_KEY) - 1);
		t += sizeof(AA_HASH_KEY) - 1;
		memcpy(t, hash, AA_HASH_HEX_LEN);
		t += AA_HASH_HEX_LEN;
		memcpy(t, "\"}\n", 3);
		t += 3;
		slen = t - (trailer + tlen);
	}
	Assert(slen == AA_CHAIN_SUFFIX_LEN + 1);

	total = body_len + tlen + slen;
	if (wbuf.len + total > WBUF_FLUSH_AT && !flush_wbuf(err))
		return false;
	if (cur_size - cur_synced >= SYNC_EVERY && !aa_stream_sync(err))
		return false;
	appendBinaryStringInfo(&wbuf, event, body_len);
	appendBinaryStringInfo(&wbuf, trailer, tlen + slen);

	total_bytes += total;
	if (commit_lsn == cur_pos.commit_lsn)
		cur_pos.events_at_lsn++;
	else
		cur_pos.events_at_lsn = 1;
	cur_pos.seq = seq;
	cur_pos.commit_lsn = commit_lsn;
	memcpy(cur_pos.hash, hash, AA_HASH_HEX_LEN + 1);
	return true;
}

/*
 * Make everything appended so far durable.  A failure here cannot simply
 * be retried: the kernel may have reported the error once and dropped the
 * data, so a later fsync would succeed on a file that lacks it.  The stream
 * therefore refuses further work until aa_stream_open() reads back what is
 * really on disk.
 */
bool
aa_stream_sync(char **err)
{
	if (stream_broken)
	{
		*err = psprintf("audit stream must be reopened: %s", stream_broken);
		return false;
	}
	if (cur_fd >= 0 && !flush_wbuf(err))
		return false;			/* retryable: the lines are still buffered */
	if (cur_fd < 0 || !cur_dirty)
		return true;
	if (pg_fsync(cur_fd) != 0)
	{
		*err = psprintf("could not fsync audit stream file \"%s\": %m",
						cur_path);
		mark_broken(*err);
		return false;
	}
	cur_dirty = false;
	cur_synced = cur_size;
	if (!check_not_removed(err))
		return false;
	drop_cached(false);
	return true;
}

/* Close the current file; the position is kept for aa_stream_position. */
void
aa_stream_close(void)
{
	forget_current();
	stream_ready = false;
}

/* The current file's path for writer_status, or NULL before the first. */
const char *
aa_stream_current_file(void)
{
	return cur_path;
}

/* Bytes appended since the process started, for writer_status. */
uint64
aa_stream_bytes_written(void)
{
	return total_bytes;
}

/*
 * Whether a failure left the stream in a state only aa_stream_open() can
 * clear (a failed fsync or truncation): the writer must then restart from
 * its slot rather than retry, since data it appended may be gone.
 */
bool
aa_stream_needs_reopen(void)
{
	return stream_broken != NULL;
}

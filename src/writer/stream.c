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
 * the error and will report success next time), so the stream's durable
 * end is its size at the last successful fsync: after a failed one the
 * file is cut back there (stream_cut.c) and the stream refuses further
 * work; the writer restarts, recovers the position from the cut file and
 * writes the rest again from the WAL.  A file is fsynced when it is opened,
 * so that this size is one this process has seen synced.
 *
 * The state file is stream_state.c's, the recovery of the position from
 * the files stream_recover.c's, the cut after a failed fsync
 * stream_cut.c's; this file appends, rotates and syncs.  It
 * must not read WAL, decide which events are delivered or in what order,
 * or write to any other sink; the writer does that (decode.c, deliver.c).
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

#include "common/json_out.h"
#include "common/sha256.h"
#include "common/stream_line.h"
#include "guc.h"
#include "writer/writer.h"

/* ,"seq":N,"lsn":"X/X","committed_at":"..." is well below this */
#define TRAILER_MAX		128

/* bytes of a line's end read to parse its trailing keys */
#define TAIL_READ_SIZE	512

/* chunk size for reading files backwards during recovery */
#define SCAN_CHUNK		65536

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
static char *open_refused = NULL;	/* why no file can be opened (see
									 * aa_stream_open) */
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
 * commit (see aa_recover_tail).
 */
#define SYNC_EVERY		((off_t) 16 * 1024 * 1024)
static off_t cur_synced = 0;	/* size at the last successful fsync */
static uint64 synced_seq = 0;	/* seq of the last line before cur_synced */
static AAStreamPos cur_pos;
static uint64 total_bytes = 0;

/* the digest of the line being written or checked */
static AASha256 sha_ctx;

/*
 * Start a line's digest with its prev_hash.  The SHA-256 code was chosen
 * and self-tested when the library was loaded (_PG_init).
 */
static void
hash_begin(const char *prev_hash)
{
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
	synced_seq = cur_pos.seq;
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
 * fsync the current file (its buffer written first by the caller).  On
 * failure the pages written since the last successful fsync cannot be
 * trusted: the file is cut back to cur_synced (stream_cut.c) and the
 * stream refuses further work, so that the writer restarts and writes
 * those lines again from the WAL.
 */
static bool
sync_current(char **err)
{
	if (pg_fsync(cur_fd) == 0)
	{
		cur_dirty = false;
		cur_synced = cur_size;
		synced_seq = cur_pos.seq;
		return true;
	}
	if (aa_cut_after_failed_fsync(cur_fd, cur_path, cur_synced, synced_seq, err))
		cur_size = cur_synced;
	resetStringInfo(&wbuf);
	cur_dirty = false;
	mark_broken(*err);
	return false;
}

/*
 * The error of an operation on a stream that must not go on: a cut still
 * pending after a failed fsync is tried again first (see stream_cut.c).
 */
static bool
refuse_broken(char **err)
{
	if (aa_cut_pending())
	{
		if (aa_cut_retry(cur_fd, err))
			cur_size = cur_synced;
		mark_broken(*err);
		return false;
	}
	*err = psprintf("audit stream must be reopened: %s", stream_broken);
	return false;
}

/*
 * Open the stream and recover its position from the files.  May be called
 * again at any time (it closes first); the caller must then take the
 * position again.  After a failure that breaks the stream the writer
 * restarts instead (aa_stream_needs_reopen), to write again from the WAL
 * what the stream lost.
 *
 * The file is fsynced before anything is appended, so that the size it is
 * cut back to after a failed fsync (sync_current) is one this process saw
 * synced.  If that first fsync fails, no size of the file is known to be
 * on disk, and nothing that was delivered may be cut: the stream refuses
 * to go on with the file for the life of this process (a later fsync
 * would report success on the same lost pages).
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
	if (open_refused)
	{
		*err = pstrdup(open_refused);
		return false;
	}
	/* a cut left pending when the file sink was switched off */
	if (aa_cut_pending())
	{
		if (!aa_cut_retry(-1, err))
			return false;
		ereport(LOG, (errmsg_internal("%s", *err)));
		pfree(*err);
		*err = NULL;
	}
	if (stream_broken)
	{
		pfree(stream_broken);
		stream_broken = NULL;
	}
	memset(&cur_pos, 0, sizeof(cur_pos));
	memcpy(cur_pos.hash, AA_ZERO_HASH, AA_HASH_HEX_LEN + 1);

	if (!aa_state_read(&st, &found, err))
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
							st.path, AA_STATE_FILE, AA_STATE_FILE);
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
	if (!aa_recover_tail(fd, st.path, sb.st_size, &st.start, &pos, &valid_end, err))
		goto fail_fd;
	if (valid_end < sb.st_size && ftruncate(fd, valid_end) != 0)
	{
		*err = psprintf("could not truncate audit stream file \"%s\": %m",
						st.path);
		goto fail_fd;
	}
	if (pg_fsync(fd) != 0)
	{
		*err = psprintf("could not fsync audit stream file \"%s\" when opening it: %m; what it holds cannot be shown to be on disk, so the writer does not go on with it until the server is restarted",
						st.path);
		open_refused = MemoryContextStrdup(TopMemoryContext, *err);
		goto fail_fd;
	}
	if (valid_end < sb.st_size)
	{
		ereport(LOG,
				(errmsg("discarded " INT64_FORMAT " bytes of undelivered data at the end of audit stream file \"%s\"",
						(int64) (sb.st_size - valid_end), st.path),
				 errdetail("The stream resumes after seq " UINT64_FORMAT ".",
						   pos.seq)));
	}
	cur_pos = pos;
	set_current(fd, MemoryContextStrdup(TopMemoryContext, st.path),
				MemoryContextStrdup(TopMemoryContext, st.directory),
				MemoryContextStrdup(TopMemoryContext, st.pattern),
				st.started, valid_end);
	stream_ready = true;
	aa_state_free(&st);
	return true;

fail_fd:
	close(fd);
	ReleaseExternalFD();
fail:
	aa_state_free(&st);
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
 *
 * A failed fsync is never retried on the same data: the previous file is
 * cut back (sync_current); a new file whose fsync failed is removed and a
 * later attempt creates it again; a failed state file write is redone from
 * scratch (aa_state_write).  But once the state file may name the new file
 * (its rename done, the fsync of its directory failed) the new file stays,
 * empty, so that a crash does not leave the state naming a missing file.
 */
static StartResult
start_file(const char *name, pg_time_t now, char **err)
{
	char	   *path;
	int			fd;
	bool		created = false;
	bool		keep = false;
	struct stat sb;
	StreamState st;
	int			save_errno;

	if (aa_log_directory == NULL || aa_log_directory[0] == '\0')
	{
		*err = pstrdup("audit.log_directory is empty");
		return START_FAILED;
	}
	if (!aa_ensure_directory(aa_log_directory, err))
		return START_FAILED;
	path = psprintf("%s/%s", aa_log_directory, name);
	if (strchr(path, '\n') != NULL)
	{
		*err = psprintf("invalid audit stream file name \"%s\"", path);
		return START_FAILED;
	}

	if (cur_fd >= 0 && !flush_wbuf(err))
		return START_FAILED;
	if (cur_fd >= 0 && cur_dirty && !sync_current(err))
		return START_FAILED;
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
	if (!aa_fsync_path(aa_log_directory, true, err))
		goto fail;

	st.path = path;
	st.directory = aa_log_directory;
	st.pattern = aa_log_filename;
	st.started = now;
	st.start = cur_pos;
	if (!aa_state_write(&st, err))
	{
		keep = !aa_state_names_other(path);
		goto fail;
	}

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
	if (created && !keep)
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
		return refuse_broken(err);

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
 * Make everything appended so far durable.  A failed fsync cannot simply
 * be retried: the kernel may have reported the error once and dropped the
 * data, so a later fsync would succeed on a file that lacks it.  The file
 * is cut back to its last successful fsync instead (sync_current) and the
 * stream refuses further work: the writer restarts and writes the rest
 * again from the WAL.
 */
bool
aa_stream_sync(char **err)
{
	if (stream_broken)
		return refuse_broken(err);
	if (cur_fd >= 0 && !flush_wbuf(err))
		return false;			/* retryable: the lines are still buffered */
	if (cur_fd < 0 || !cur_dirty)
		return true;
	if (!sync_current(err))
		return false;
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
 * Whether a failure left the stream in a state only a restart can clear (a
 * failed fsync, once the file is cut back; a removed file): the writer must
 * then restart from its slot rather than retry, since data it appended is
 * gone.  Not while a cut is pending: a restart would trust the file as it
 * reads (see stream_cut.c).
 */
bool
aa_stream_needs_reopen(void)
{
	return stream_broken != NULL && !aa_cut_pending();
}

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
 * long as the caller redelivers everything after that position.  Without a
 * state file a new stream starts, but not beside the files of an old one
 * (stream_state.c); a current file removed, moved away or replaced is
 * noticed before the position moves (aa_stream_check_in_place), and one
 * that ends before what this server's writer saw in place is refused when
 * the stream is reopened (aa_status_set_stream_seq).
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
 * stream_cut.c's, starting a file stream_rotate.c's, a line's keys
 * line_out.c's; this file opens, appends and syncs.  It must not read WAL, decide which events are delivered or in what order,
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



/*
 * The open stream.  Strings live in TopMemoryContext; the file descriptor
 * is a long-lived kernel FD reserved with fd.c.
 */
static bool stream_ready = false;
static char *stream_broken = NULL;	/* why the stream must be reopened */
static char *open_refused = NULL;	/* why no file can be opened (see
									 * aa_stream_open) */
AAStreamFile aa_cur = {-1, NULL, NULL, NULL, NULL, 0, 0, false};

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

/* Remember why the stream cannot go on; kept until aa_stream_open(). */
static void
mark_broken(const char *reason)
{
	if (stream_broken)
		pfree(stream_broken);
	stream_broken = MemoryContextStrdup(TopMemoryContext, reason);
}

/* Forget the open file (not the position, which survives a close). */
void
aa_stream_forget_current(void)
{
	if (aa_cur.fd >= 0)
	{
		close(aa_cur.fd);
		ReleaseExternalFD();
	}
	aa_cur.fd = -1;
	if (aa_cur.path)
		pfree(aa_cur.path);
	if (aa_cur.directory)
		pfree(aa_cur.directory);
	if (aa_cur.pattern)
		pfree(aa_cur.pattern);
	aa_cur.path = aa_cur.directory = aa_cur.pattern = NULL;
	aa_cur.name = NULL;
	aa_cur.size = 0;
	aa_cur.dirty = false;
	cur_dropped = 0;
	cur_synced = 0;
	if (wbuf_ready)
		resetStringInfo(&wbuf);
}

/* Adopt an open file as the current one; the strings become ours. */
void
aa_stream_set_current(int fd, char *path, char *directory, char *pattern,
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
	aa_cur.fd = fd;
	aa_cur.path = path;
	slash = strrchr(path, '/');
	aa_cur.name = slash ? slash + 1 : path;
	aa_cur.directory = directory;
	aa_cur.pattern = pattern;
	aa_cur.started = started;
	aa_cur.size = size;
	aa_cur.dirty = false;
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
void
aa_stream_drop_cached(bool all)
{
#if defined(USE_POSIX_FADVISE) && defined(POSIX_FADV_DONTNEED)
	off_t		upto = all ? aa_cur.size : aa_cur.size - CACHE_KEEP;

	if (aa_cur.fd < 0 || upto <= cur_dropped ||
		(!all && upto - cur_dropped < CACHE_DROP_STEP))
		return;
	(void) posix_fadvise(aa_cur.fd, cur_dropped, upto - cur_dropped,
						 POSIX_FADV_DONTNEED);
	cur_dropped = upto;
#else
	(void) all;
#endif
}

/*
 * Whether the current file is still the file at its path.  A file removed
 * from the directory (by hand, by a clean-up job), or moved away with mv
 * (its link count stays 1) or replaced by another file of the same name,
 * would swallow every later event unseen: the stream and its state file
 * name the path, not the file.  Checked before each batch of lines is
 * written and after each fsync, before the position moves, so that what
 * went into the file since the last sync is read from the WAL again once
 * the stream is reopened (and put back, the file is taken up again).
 */
bool
aa_stream_check_in_place(char **err)
{
	struct stat fsb;
	struct stat psb;
	bool		gone;

	if (fstat(aa_cur.fd, &fsb) != 0)
	{
		*err = psprintf("could not stat audit stream file \"%s\": %m",
						aa_cur.path);
		return false;
	}
	if (fsb.st_nlink == 0)
	{
		*err = psprintf("audit stream file \"%s\" was removed while the writer was appending to it",
						aa_cur.path);
		mark_broken(*err);
		return false;
	}
	gone = stat(aa_cur.path, &psb) != 0;
	if (gone && errno != ENOENT)
	{
		*err = psprintf("could not stat audit stream file \"%s\": %m",
						aa_cur.path);
		return false;
	}
	if (gone || psb.st_dev != fsb.st_dev || psb.st_ino != fsb.st_ino)
	{
		*err = psprintf("audit stream file \"%s\" was moved away or replaced while the writer was appending to it",
						aa_cur.path);
		mark_broken(*err);
		return false;
	}
	return true;
}

/* Write the buffered lines to the current file (see wbuf). */
bool
aa_stream_flush_wbuf(char **err)
{
	size_t		done = 0;

	if (!wbuf_ready || wbuf.len == 0)
		return true;
	if (!aa_stream_check_in_place(err))
		return false;
	while (done < (size_t) wbuf.len)
	{
		ssize_t		n = write(aa_cur.fd, wbuf.data + done, wbuf.len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			int			save_errno = (n == 0) ? ENOSPC : errno;

			*err = NULL;
			if (done > 0 && ftruncate(aa_cur.fd, aa_cur.size) != 0)
			{
				errno = save_errno;
				*err = psprintf("could not write to audit stream file \"%s\" and could not remove the partial lines: %m",
								aa_cur.path);
				mark_broken(*err);
			}
			errno = save_errno;
			if (*err == NULL)
				*err = psprintf("could not write to audit stream file \"%s\": %m",
								aa_cur.path);
			return false;
		}
		done += n;
	}
	aa_cur.size += wbuf.len;
	aa_cur.dirty = true;
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
bool
aa_stream_sync_current(char **err)
{
	if (pg_fsync(aa_cur.fd) == 0)
	{
		aa_cur.dirty = false;
		cur_synced = aa_cur.size;
		synced_seq = cur_pos.seq;
		return true;
	}
	if (aa_cut_after_failed_fsync(aa_cur.fd, aa_cur.path, cur_synced, synced_seq, err))
		aa_cur.size = cur_synced;
	resetStringInfo(&wbuf);
	aa_cur.dirty = false;
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
		if (aa_cut_retry(aa_cur.fd, err))
			aa_cur.size = cur_synced;
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
		/* a new stream, unless the state of one was lost */
		if (!aa_state_missing_ok(err))
			return false;
		aa_status_set_stream_seq(0);
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
	/* a file replaced or cut since this server's writer last checked it */
	if (pos.seq < aa_status_stream_seq())
	{
		*err = psprintf("audit stream file \"%s\" ends at seq " UINT64_FORMAT ", but the stream held seq " UINT64_FORMAT " already: the file was replaced or cut; put the original file back",
						st.path, pos.seq, aa_status_stream_seq());
		goto fail_fd;
	}
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
	aa_stream_set_current(fd, MemoryContextStrdup(TopMemoryContext, st.path),
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

/* Bytes appended but not yet written to the file (see wbuf). */
size_t
aa_stream_buffered(void)
{
	return wbuf_ready ? (size_t) wbuf.len : 0;
}

/* The position after the last successful append. */
void
aa_stream_position(AAStreamPos *pos)
{
	*pos = cur_pos;
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
	char		tail[AA_LINE_TAIL_MAX];
	char		hash[AA_HASH_HEX_LEN + 1];
	int			body_len;
	int			tlen;
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
	if (aa_cur.fd < 0 ||
		(first_of_commit && commit_lsn != cur_pos.commit_lsn))
	{
		if (!aa_stream_maybe_rotate(err))
			return false;
	}

	/* {...} loses its '}' and gains our keys (line_out.c) */
	body_len = len - 1;
	seq = cur_pos.seq + 1;
	tlen = aa_line_tail(event, body_len, seq, commit_lsn, committed_at,
						cur_pos.hash, tail, hash);
	total = body_len + tlen;
	if (wbuf.len + total > WBUF_FLUSH_AT && !aa_stream_flush_wbuf(err))
		return false;
	if (aa_cur.size - cur_synced >= SYNC_EVERY && !aa_stream_sync(err))
		return false;
	appendBinaryStringInfo(&wbuf, event, body_len);
	appendBinaryStringInfo(&wbuf, tail, tlen);

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
	if (aa_cur.fd >= 0 && !aa_stream_flush_wbuf(err))
		return false;			/* retryable: the lines are still buffered */
	if (aa_cur.fd < 0 || !aa_cur.dirty)
		return true;
	if (!aa_stream_sync_current(err))
		return false;
	if (!aa_stream_check_in_place(err))
		return false;
	aa_status_set_stream_seq(synced_seq);
	aa_stream_drop_cached(false);
	return true;
}

/* Close the current file; the position is kept for aa_stream_position. */
void
aa_stream_close(void)
{
	aa_stream_forget_current();
	stream_ready = false;
}

/* The current file's path for writer_status, or NULL before the first. */
const char *
aa_stream_current_file(void)
{
	return aa_cur.path;
}

/* Bytes appended since the process started, for writer_status. */
uint64
aa_stream_bytes_written(void)
{
	return total_bytes;
}

/*
 * Whether a failure left the stream in a state only a restart can clear (a
 * failed fsync, once the file is cut back; a removed or moved file): the
 * writer must then restart from its slot rather than retry, since data it
 * appended is gone.  Not while a cut is pending: a restart would trust the file as it
 * reads (see stream_cut.c).
 */
bool
aa_stream_needs_reopen(void)
{
	return stream_broken != NULL && !aa_cut_pending();
}

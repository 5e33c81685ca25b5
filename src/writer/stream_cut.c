/*-------------------------------------------------------------------------
 *
 * stream_cut.c
 *		What the stream does after a failed fsync() of one of its files:
 *		cut the file back to its size at the last successful fsync.
 *
 * A failed fsync cannot be retried (see fd.c, data_sync_elevel): Linux
 * may have marked the dirty pages clean without writing them, so reads
 * still return the data and the next fsync reports success, but the data
 * may never reach the disk.  PostgreSQL PANICs and replays its WAL.  The
 * stream does the same in its own way: its durable end is where the last
 * successful fsync left it, and everything after that is cut off
 * (ftruncate, then fsync) and written again, as new pages, from the WAL --
 * the writer's slot never moves past what was synced, so the WAL still
 * holds those events.  The writer restarts to read them again.
 *
 * If the cut cannot be made (or made durable), the stream must not go on
 * on top of pages it cannot trust, nor restart and read them back as if
 * they were on disk: the cut stays pending, every later operation of the
 * stream tries it again first and fails until it succeeds.  The pending
 * cut lives in this process only.  A server restart forgets it, but the
 * usual reasons for a failed cut (a file system gone read-only after a
 * journal abort, a dead device) make the reopened file unwritable too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/memutils.h"

#include "writer/writer.h"

/* The cut still to be made; cut_path NULL if none.  In TopMemoryContext. */
static char *cut_path = NULL;
static char *cut_reason = NULL; /* the failed fsync, as reported */
static off_t cut_size = 0;		/* the size at the last successful fsync */
static uint64 cut_seq = 0;		/* seq of the last line before cut_size */

/*
 * Truncate a file to `size` and fsync it, through fd, or through a new
 * descriptor of `path` when fd < 0 (the stream was closed meanwhile).
 */
static bool
cut_file(int fd, const char *path, off_t size, char **err)
{
	int			own = -1;
	bool		ok = false;

	if (fd < 0)
	{
		own = fd = OpenTransientFile(path, O_RDWR | PG_BINARY);
		if (fd < 0)
		{
			*err = psprintf("could not open it: %m");
			return false;
		}
	}
	if (ftruncate(fd, size) != 0)
		*err = psprintf("could not truncate it: %m");
	else if (pg_fsync(fd) != 0)
		*err = psprintf("could not fsync it after truncating it: %m");
	else
		ok = true;
	if (own >= 0)
	{
		int			save_errno = errno;

		CloseTransientFile(own);
		errno = save_errno;
	}
	return ok;
}

/*
 * Try the pending cut.  *err is set either way: to why the stream stops
 * (the failed fsync and what was done about it) when the cut is done, or
 * to why it still waits.  Returns whether the cut is done.
 */
static bool
try_cut(int fd, char **err)
{
	char	   *why = NULL;

	if (!cut_file(fd, cut_path, cut_size, &why))
	{
		*err = psprintf("%s; the lines written to it since its last successful fsync (at "
						INT64_FORMAT " bytes) cannot be trusted and could not be cut off (%s): delivery waits until they can be",
						cut_reason, (int64) cut_size, why);
		pfree(why);
		return false;
	}
	*err = psprintf("%s; cut back to the " INT64_FORMAT " bytes of its last successful fsync: the events after seq "
					UINT64_FORMAT " are written again",
					cut_reason, (int64) cut_size, cut_seq);
	pfree(cut_path);
	pfree(cut_reason);
	cut_path = cut_reason = NULL;
	return true;
}

/*
 * Called right after an fsync of the stream file `path` (open as fd)
 * failed, with errno as the fsync left it.  synced_size and synced_seq are
 * the file's size and the stream's seq at the last successful fsync.  Cuts
 * the file back there (see the header); *err says what happened.  Returns
 * whether the cut is done; if not, it is pending (aa_cut_retry).  Either
 * way the stream must not go on in this process.
 */
bool
aa_cut_after_failed_fsync(int fd, const char *path, off_t synced_size,
						  uint64 synced_seq, char **err)
{
	char	   *reason = psprintf("could not fsync audit stream file \"%s\": %m",
								  path);

	if (cut_path)
		pfree(cut_path);
	if (cut_reason)
		pfree(cut_reason);
	cut_path = MemoryContextStrdup(TopMemoryContext, path);
	cut_reason = MemoryContextStrdup(TopMemoryContext, reason);
	cut_size = synced_size;
	cut_seq = synced_seq;
	pfree(reason);
	return try_cut(fd, err);
}

/* Whether a cut is pending (see the header). */
bool
aa_cut_pending(void)
{
	return cut_path != NULL;
}

/*
 * Try a pending cut again, through fd if the file is still open (else
 * -1).  Returns whether it is done; *err is set as by
 * aa_cut_after_failed_fsync.
 */
bool
aa_cut_retry(int fd, char **err)
{
	Assert(cut_path != NULL);
	return try_cut(fd, err);
}

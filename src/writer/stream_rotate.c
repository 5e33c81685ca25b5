/*-------------------------------------------------------------------------
 *
 * stream_rotate.c
 *		Starting the stream's files: the first one, and the next one when
 *		the current file is due for rotation (audit.rotation_size,
 *		audit.rotation_age, a changed directory or name pattern).
 *
 * Before the state file points into a new file, everything before it is
 * durable: the file left behind (its last line becomes the new file's
 * starting position), the new file's existence and its directory entry.
 * Names stay unique and sort in stream order.  The current file itself is
 * stream.c's (aa_cur); this file only decides when and how to start one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgtime.h"
#include "storage/fd.h"
#include "utils/datetime.h"
#include "utils/memutils.h"

#include "guc.h"
#include "writer/writer.h"

typedef enum StartResult
{
	START_OK,
	START_TAKEN,				/* a non-empty file of that name exists */
	START_FAILED
} StartResult;

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

	if (aa_cur.fd >= 0 && !aa_stream_flush_wbuf(err))
		return START_FAILED;
	if (aa_cur.fd >= 0 && aa_cur.dirty && !aa_stream_sync_current(err))
		return START_FAILED;
	if (aa_cur.fd >= 0 && !aa_stream_check_in_place(err))
		return START_FAILED;
	aa_stream_drop_cached(true);

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
	aa_stream_position(&st.start);
	if (!aa_state_write(&st, err))
	{
		keep = !aa_state_names_other(path);
		goto fail;
	}

	ReserveExternalFD();
	aa_stream_forget_current();
	aa_stream_set_current(fd, MemoryContextStrdup(TopMemoryContext, path),
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
bool
aa_stream_maybe_rotate(char **err)
{
	pg_time_t	now = (pg_time_t) time(NULL);
	char		name[MAXPGPATH];
	bool		same_dir;
	StartResult res;

	if (aa_cur.fd >= 0)
	{
		bool		due = false;

		same_dir = strcmp(aa_cur.directory, aa_log_directory) == 0;
		if (!same_dir || strcmp(aa_cur.pattern, aa_log_filename) != 0)
			due = true;
		else if (aa_rotation_size > 0 &&
				 aa_cur.size + aa_stream_buffered() >= (off_t) aa_rotation_size * 1024)
			due = true;
		else if (aa_rotation_age > 0 &&
				 now - aa_cur.started >= (pg_time_t) aa_rotation_age * SECS_PER_MINUTE)
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
	if (aa_cur.fd >= 0 && same_dir && strcmp(name, aa_cur.name) <= 0)
		return true;

	res = start_file(name, now, err);
	if (res == START_TAKEN && aa_cur.fd >= 0)
	{
		pfree(*err);
		*err = NULL;
		return true;
	}
	return res == START_OK;
}

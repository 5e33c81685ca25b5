/*-------------------------------------------------------------------------
 *
 * stream_state.c
 *		The stream's state file, $PGDATA/pg_activity_audit/stream_state,
 *		and the durable-file helpers the stream uses.
 *
 * The state file names the current stream file and the position (seq,
 * commit LSN, hash) the stream had when that file was started; it is
 * written durably, the way durable_rename() would, before the first line
 * goes into a new file.  A state file that exists but cannot be understood
 * is an error: guessing could repeat or skip events.
 *
 * Everything here reports failures (false and a message) instead of
 * throwing, so the writer can retry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "storage/fd.h"

#include "common/stream_line.h"
#include "writer/writer.h"

#define STATE_MAGIC		"activity_audit stream state 1"
#define STATE_MAX_SIZE	16384

/*
 * fsync a file or directory by name.  As in fd.c, some systems refuse to
 * fsync a directory; that is not an error.
 */
bool
aa_fsync_path(const char *path, bool isdir, char **err)
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
bool
aa_ensure_directory(const char *dir, char **err)
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
	if (!aa_fsync_path(parent[0] ? parent : ".", true, err))
		return false;
	pfree(parent);
	return true;
}

/* write() all of a buffer, looping over short writes. */
bool
aa_write_all(int fd, const char *data, size_t len)
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

/*
 * Write the state file the way durable_rename() would (temporary file,
 * fsync, rename, fsync of the directory), reporting instead of throwing.
 * After this returns true, a crash recovers into the new file.
 *
 * After a failure the caller writes it again from scratch: the temporary
 * file is truncated and written anew and renamed again, so a later fsync
 * never stands for pages or a rename that an earlier failed fsync may have
 * lost (see stream_cut.c).
 */
bool
aa_state_write(const StreamState *st, char **err)
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
	if (created_dir && !aa_fsync_path(".", true, err))
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

	fd = OpenTransientFilePerm(AA_STATE_TMP_FILE,
							   O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		*err = psprintf("could not create file \"%s\": %m", AA_STATE_TMP_FILE);
		pfree(buf.data);
		return false;
	}
	if (!aa_write_all(fd, buf.data, buf.len))
	{
		save_errno = errno;
		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not write file \"%s\": %m", AA_STATE_TMP_FILE);
		pfree(buf.data);
		return false;
	}
	pfree(buf.data);
	if (pg_fsync(fd) != 0)
	{
		save_errno = errno;
		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not fsync file \"%s\": %m", AA_STATE_TMP_FILE);
		return false;
	}
	if (CloseTransientFile(fd) != 0)
	{
		*err = psprintf("could not close file \"%s\": %m", AA_STATE_TMP_FILE);
		return false;
	}
	if (rename(AA_STATE_TMP_FILE, AA_STATE_FILE) != 0)
	{
		*err = psprintf("could not rename file \"%s\" to \"%s\": %m",
						AA_STATE_TMP_FILE, AA_STATE_FILE);
		return false;
	}
	return aa_fsync_path(AA_STATE_DIR, true, err);
}

/*
 * Whether the state file can be read and names a file other than `path`:
 * after a failed aa_state_write, whether `path` may be removed again.
 */
bool
aa_state_names_other(const char *path)
{
	StreamState st;
	bool		found;
	char	   *err = NULL;

	if (!aa_state_read(&st, &found, &err))
	{
		pfree(err);
		return false;
	}
	return !found || strcmp(st.path, path) != 0;
}

/*
 * Read the state file.  *found is false when there is none (a stream that
 * never had a file).  A state file that exists but cannot be understood is
 * an error: guessing could repeat or skip events.
 */
bool
aa_state_read(StreamState *st, bool *found, char **err)
{
	int			fd;
	char	   *buf;
	ssize_t		len;
	char	   *line;
	char	   *next;
	int			seen = 0;

	*found = false;
	fd = OpenTransientFile(AA_STATE_FILE, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return true;
		*err = psprintf("could not open file \"%s\": %m", AA_STATE_FILE);
		return false;
	}
	buf = palloc(STATE_MAX_SIZE + 1);
	len = read(fd, buf, STATE_MAX_SIZE + 1);
	if (len < 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		*err = psprintf("could not read file \"%s\": %m", AA_STATE_FILE);
		return false;
	}
	CloseTransientFile(fd);
	if (len > STATE_MAX_SIZE)
	{
		*err = psprintf("file \"%s\" is too large", AA_STATE_FILE);
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

			ok = aa_parse_uint64(value, &v, &end) && *end == '\0';
			st->started = (pg_time_t) v;
			seen |= 2;
		}
		else if (strcmp(line, "seq") == 0)
		{
			ok = aa_parse_uint64(value, &st->start.seq, &end) && *end == '\0';
			seen |= 4;
		}
		else if (strcmp(line, "lsn") == 0)
		{
			ok = aa_parse_lsn(value, &st->start.commit_lsn, &end) && *end == '\0';
			seen |= 8;
		}
		else if (strcmp(line, "events_at_lsn") == 0)
		{
			uint64		v;

			ok = aa_parse_uint64(value, &v, &end) && *end == '\0' && v <= PG_INT32_MAX;
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
		*err = psprintf("file \"%s\" is corrupt", AA_STATE_FILE);
		return false;
	}
	*found = true;
	return true;
}

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
 * A missing state file means a new stream, starting at seq 1, but only if
 * audit.log_directory holds none of a stream's files: otherwise the state
 * was lost (removed by hand, a partial restore) and a second chain would
 * start in the same directory, reusing seq.  The stream is not rebuilt
 * from the files either: which file is current and where it began is
 * what the state file records, and the files cannot prove it (the last
 * one by name may have been removed, or one moved in from elsewhere), so a
 * guess could fork the chain or skip events.  The writer refuses instead,
 * naming a file and what to do (aa_state_missing_ok).
 *
 * Everything here reports failures (false and a message) instead of
 * throwing, so the writer can retry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "storage/fd.h"

#include "common/stream_line.h"
#include "guc.h"
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
	{
		pfree(parent);
		return false;
	}
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
 * One "key value" line of the state file into st: the key's bit in the
 * set of keys seen (see aa_state_read), 0 for an unknown key (a newer
 * writer's, ignored), -1 for a value that does not parse.
 */
static int
state_field(const char *key, char *value, StreamState *st)
{
	const char *end;
	uint64		v;

	if (strcmp(key, "started") == 0)
	{
		if (!aa_parse_uint64(value, &v, &end) || *end != '\0')
			return -1;
		st->started = (pg_time_t) v;
		return 2;
	}
	if (strcmp(key, "seq") == 0)
		return aa_parse_uint64(value, &st->start.seq, &end) && *end == '\0' ? 4 : -1;
	if (strcmp(key, "lsn") == 0)
		return aa_parse_lsn(value, &st->start.commit_lsn, &end) && *end == '\0' ? 8 : -1;
	if (strcmp(key, "events_at_lsn") == 0)
	{
		if (!aa_parse_uint64(value, &v, &end) || *end != '\0' || v > PG_INT32_MAX)
			return -1;
		st->start.events_at_lsn = (int) v;
		return 16;
	}
	if (strcmp(key, "hash") == 0)
	{
		if (strlen(value) != AA_HASH_HEX_LEN || !aa_is_hash_hex(value))
			return -1;
		memcpy(st->start.hash, value, AA_HASH_HEX_LEN + 1);
		return 32;
	}
	if (strcmp(key, "directory") == 0 && st->directory == NULL)
	{
		st->directory = pstrdup(value);
		return 64;
	}
	if (strcmp(key, "pattern") == 0 && st->pattern == NULL)
	{
		st->pattern = pstrdup(value);
		return 128;
	}
	if (strcmp(key, "file") == 0 && st->path == NULL)
	{
		if (value[0] == '\0')
			return -1;
		st->path = pstrdup(value);
		return 256;
	}
	return strcmp(key, "directory") == 0 || strcmp(key, "pattern") == 0 ||
		strcmp(key, "file") == 0 ? -1 : 0;
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
	bool		other;
	char	   *err = NULL;

	if (!aa_state_read(&st, &found, &err))
	{
		pfree(err);
		return false;
	}
	other = !found || strcmp(st.path, path) != 0;
	aa_state_free(&st);
	return other;
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
	bool		complete;

	*found = false;
	memset(st, 0, sizeof(*st));
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
		pfree(buf);
		errno = save_errno;
		*err = psprintf("could not read file \"%s\": %m", AA_STATE_FILE);
		return false;
	}
	CloseTransientFile(fd);
	if (len > STATE_MAX_SIZE)
	{
		pfree(buf);
		*err = psprintf("file \"%s\" is too large", AA_STATE_FILE);
		return false;
	}
	buf[len] = '\0';

	line = buf;
	for (; (next = strchr(line, '\n')) != NULL; line = next + 1)
	{
		char	   *value;
		int			bit;

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
		bit = state_field(line, value, st);
		if (bit < 0)
		{
			seen = -1;
			break;
		}
		seen |= bit;
	}
	/* judged before buf goes: line points into it */
	complete = (seen == 511 && *line == '\0');
	pfree(buf);
	if (!complete)
	{
		aa_state_free(st);
		*err = psprintf("file \"%s\" is corrupt", AA_STATE_FILE);
		return false;
	}
	*found = true;
	return true;
}

/* Free the strings of a state read by aa_state_read(). */
void
aa_state_free(StreamState *st)
{
	if (st->path)
		pfree(st->path);
	if (st->directory)
		pfree(st->directory);
	if (st->pattern)
		pfree(st->pattern);
	st->path = st->directory = st->pattern = NULL;
}

/*
 * With no state file: whether a new stream may start, i.e. whether
 * audit.log_directory holds no stream file (a regular *.jsonl file, as the
 * readers count them).  A directory that does not exist yet holds none.
 * Otherwise false, naming the first file found and what to do: the state
 * was lost, and starting again at seq 1 beside the old chain would give
 * two streams in one directory (see the head of this file).
 */
bool
aa_state_missing_ok(char **err)
{
	DIR		   *d;
	struct dirent *de;
	char	   *found = NULL;

	if (aa_log_directory == NULL || aa_log_directory[0] == '\0')
		return true;			/* the first file's start reports it */
	d = AllocateDir(aa_log_directory);
	if (d == NULL)
	{
		if (errno == ENOENT)
			return true;
		*err = psprintf("could not open audit log directory \"%s\": %m",
						aa_log_directory);
		return false;
	}
	for (;;)
	{
		char	   *path;
		struct stat sb;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		if (!aa_is_stream_file_name(de->d_name))
			continue;
		path = psprintf("%s/%s", aa_log_directory, de->d_name);
		if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
		{
			pfree(path);
			continue;
		}
		found = path;
		break;
	}
	if (de == NULL && errno != 0)
	{
		*err = psprintf("could not read audit log directory \"%s\": %m",
						aa_log_directory);
		FreeDir(d);
		return false;
	}
	FreeDir(d);
	if (found == NULL)
		return true;
	*err = psprintf("\"%s\" is missing but audit stream file \"%s\" exists: the writer does not start a second stream at seq 1 beside it; put \"%s\" back (from a backup), or move the stream's files out of \"%s\" to start a new stream",
					AA_STATE_FILE, found, AA_STATE_FILE, aa_log_directory);
	pfree(found);
	return false;
}

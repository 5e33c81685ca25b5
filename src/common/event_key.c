/*-------------------------------------------------------------------------
 *
 * event_key.c
 *		Where the event key comes from: the data directory, or a key file
 *		outside it (audit.key_file), and which keys are still accepted.
 *
 * By default the key is 16 random bytes in $PGDATA/pg_activity_audit/
 * event_key, made on the first start.  Everything under the data directory
 * travels with every base backup, so whoever holds a backup (or a
 * REPLICATION role that can take one) could sign events.  audit.key_file
 * names a file outside the data directory instead, checked like
 * ssl_key_file: an absolute path, owned by the server's OS user (then
 * readable by it alone) or by root (then also by its group), and not
 * inside the data directory.  It holds keys as 32 hex digits, one per line
 * ('#' starts a comment): the first signs, all of them verify.  That is
 * how the key is rotated without losing the backlog: put a new key on the
 * first line, restart, and remove the old line once flush() has delivered
 * what was signed under it.  A key left in the data directory when the
 * file is used is still accepted (the events waiting under it are not
 * lost), with a WARNING at every start until it is removed.
 *
 * Runs in the postmaster, from _PG_init, with the data directory as the
 * working directory; every backend and the writer inherit the keys, and no
 * SQL can read them.  Any failure stops the server: events could not be
 * authenticated.  sign.c uses the keys and must not know where they came
 * from.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "activity_audit.h"
#include "common/sign.h"
#include "common/stream_format.h"
#include "common/stream_line.h"
#include "guc.h"

#define AA_DATADIR_KEY_FILE		AA_STATE_DIR "/event_key"
#define AA_KEY_FILE_MAX			4096	/* more than AA_MAX_KEYS lines */

/*
 * The data directory's key: read it, or make it when missing and "create";
 * false if it is missing and not made.
 */
static bool
load_datadir_key(bool create, unsigned char *key)
{
	int			fd;

	fd = open(AA_DATADIR_KEY_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0 && errno == ENOENT)
	{
		const char *tmp = AA_DATADIR_KEY_FILE ".tmp";

		if (!create)
			return false;
		if (mkdir(AA_STATE_DIR, S_IRWXU) != 0 && errno != EEXIST)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", AA_STATE_DIR)));
		if (!pg_strong_random(key, AA_KEY_LEN))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate the activity_audit event key")));
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
		if (fd < 0 || write(fd, key, AA_KEY_LEN) != AA_KEY_LEN ||
			pg_fsync(fd) != 0 || close(fd) != 0)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmp)));
		/* FATAL: it does not return on failure */
		(void) durable_rename(tmp, AA_DATADIR_KEY_FILE, FATAL);
		fd = open(AA_DATADIR_KEY_FILE, O_RDONLY | PG_BINARY, 0);
	}
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", AA_DATADIR_KEY_FILE)));
	if (read(fd, key, AA_KEY_LEN) != AA_KEY_LEN)
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" does not hold a %d-byte key", AA_DATADIR_KEY_FILE, AA_KEY_LEN),
				 errhint("Remove the file to make a new key; events written under the old key will then be rejected.")));
	close(fd);
	return true;
}

/* Report a key file the server refuses, with what to do. */
static void
pg_attribute_noreturn()
key_file_error(const char *path, const char *problem, const char *hint)
{
	ereport(FATAL,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("audit.key_file \"%s\" %s", path, problem),
			 errhint("%s", hint)));
	pg_unreachable();
}

/*
 * Where the key file may be: an absolute path, not inside the data
 * directory (base backups copy that), owned and protected like
 * ssl_key_file.  fstat of the open file, so that what is checked is what
 * is read.
 */
static void
check_key_file(const char *path, int fd)
{
	struct stat st;
	char		real[PATH_MAX];
	char		data[PATH_MAX];
	size_t		dlen;

	if (fstat(fd, &st) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		key_file_error(path, "is not a regular file",
					   "Point audit.key_file at a file of keys, 32 hex digits per line.");
	if (st.st_uid != geteuid() && st.st_uid != 0)
		key_file_error(path, "must be owned by the database user or root",
					   "chown the file to the server's operating-system user.");
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
		key_file_error(path, "has group or world access",
					   "The file must have permissions u=rw (0600) or less if owned by the database user, or u=rw,g=r (0640) or less if owned by root.");
	if (realpath(path, real) == NULL || realpath(DataDir, data) == NULL)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not resolve the path \"%s\": %m", path)));
	dlen = strlen(data);
	if (strncmp(real, data, dlen) == 0 && (real[dlen] == '/' || real[dlen] == '\0'))
		key_file_error(path, "is inside the data directory",
					   "Base backups copy the data directory, and with it the key: keep the key file elsewhere, like ssl_key_file.");
}

/*
 * Read audit.key_file: each line is empty, a comment, or one key of 32
 * hex digits; at least one key, at most AA_MAX_KEYS.  The first signs.
 */
static void
load_key_file(const char *path)
{
	char		text[AA_KEY_FILE_MAX + 1];
	unsigned char key[AA_KEY_LEN];
	ssize_t		n;
	int			fd;
	int			lineno = 0;
	int			nkeys = 0;
	char	   *line;
	char	   *next;

	if (!is_absolute_path(path))
		key_file_error(path, "is not an absolute path",
					   "Give the key file's absolute path, outside the data directory.");
	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open audit.key_file \"%s\": %m", path),
				 errhint("Make the file with one key of 32 hex digits per line, for example: openssl rand -hex 16 > \"%s\"", path)));
	check_key_file(path, fd);
	n = read(fd, text, sizeof(text));
	if (n < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not read audit.key_file \"%s\": %m", path)));
	close(fd);
	if (n > AA_KEY_FILE_MAX)
		key_file_error(path, "is too long",
					   psprintf("It holds at most %d keys, 32 hex digits per line.", AA_MAX_KEYS));
	text[n] = '\0';

	for (line = text; line != NULL; line = next)
	{
		char	   *p;
		char	   *end;
		int			i;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		while (*line == ' ' || *line == '\t' || *line == '\r')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*line == '\0')
			continue;

		if (end - line != 2 * AA_KEY_LEN)
			key_file_error(path, psprintf("line %d is not a key", lineno),
						   "Each key is 32 hex digits (16 bytes) on a line of its own, for example from: openssl rand -hex 16");
		for (i = 0; i < AA_KEY_LEN; i++)
		{
			int			hi = aa_hex_value(line[2 * i]);
			int			lo = aa_hex_value(line[2 * i + 1]);

			if (hi < 0 || lo < 0)
				key_file_error(path, psprintf("line %d is not a key", lineno),
							   "Each key is 32 hex digits (16 bytes) on a line of its own, for example from: openssl rand -hex 16");
			key[i] = (unsigned char) (hi << 4 | lo);
		}
		if (nkeys == AA_MAX_KEYS)
			key_file_error(path, psprintf("holds more than %d keys", AA_MAX_KEYS),
						   "Remove the keys under which nothing waits to be delivered any more.");
		aa_add_event_key(key);
		nkeys++;
	}
	explicit_bzero(text, sizeof(text));
	explicit_bzero(key, sizeof(key));
	if (nkeys == 0)
		key_file_error(path, "holds no key",
					   "Each key is 32 hex digits (16 bytes) on a line of its own, for example from: openssl rand -hex 16");
}

/*
 * Load the keys: the key file's if audit.key_file is set (and a key still
 * in the data directory, accepted for what waits under it), else the data
 * directory's, made on the first start.
 */
void
aa_load_event_key(void)
{
	unsigned char key[AA_KEY_LEN];

	if (aa_key_file == NULL || aa_key_file[0] == '\0')
	{
		(void) load_datadir_key(true, key);
		aa_add_event_key(key);
	}
	else
	{
		load_key_file(aa_key_file);
		if (load_datadir_key(false, key))
		{
			if (aa_add_event_key(key))
				ereport(WARNING,
						(errmsg("activity_audit still accepts the event key in \"%s\"", AA_DATADIR_KEY_FILE),
						 errdetail("audit.key_file is set, but the data directory's key, which base backups copy, still verifies events."),
						 errhint("Once activity_audit.flush() has returned true, remove \"%s\"; or add its key to audit.key_file as a line of its own (od -An -tx1 \"%s\" | tr -d ' \\n') if events under it may still wait.",
								 AA_DATADIR_KEY_FILE, AA_DATADIR_KEY_FILE)));
		}
	}
	explicit_bzero(key, sizeof(key));
}

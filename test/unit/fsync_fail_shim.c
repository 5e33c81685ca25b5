/*-------------------------------------------------------------------------
 *
 * fsync_fail_shim.c
 *		An LD_PRELOAD library for test/t/026_fsync_failure.pl: it makes
 *		fsync() and fdatasync() of the audit stream's files fail with EIO on
 *		demand, and logs every fsync and ftruncate of those files so that the
 *		test can emulate the data a kernel loses after a failed fsync.
 *
 * A stream file is any file whose path (resolved through /proc/self/fd)
 * ends in ".jsonl"; calls on other files go straight to the C library.
 *
 * Environment:
 *	AA_SHIM_CONTROL	a path.  While that file exists, fsync() and fdatasync()
 *					of stream files fail with EIO without syncing anything.
 *					If the file holds "once", only the next one fails and
 *					the shim removes the file.
 *	AA_SHIM_LOG		a path.  One line is appended per call on a stream file:
 *					"fsync ok SIZE PATH", "fsync fail SIZE PATH" (SIZE: the
 *					file's size when called) or "ftruncate LENGTH PATH"
 *					(only when it succeeded).
 *
 * The log is opened with O_APPEND for every line and each line is written
 * with one write(), so the lines of several processes do not mix.  Built by
 * the test with "cc -shared -fPIC ... -ldl"; it uses nothing of PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*sync_fn) (int);
typedef int (*truncate_fn) (int, off_t);
typedef int (*truncate64_fn) (int, off64_t);

/* The path of fd if it is a stream file (into buf), else NULL. */
static const char *
stream_path(int fd, char *buf, size_t size)
{
	char		link[64];
	ssize_t		n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, size - 1);
	if (n <= 6)
		return NULL;
	buf[n] = '\0';
	if (strcmp(buf + n - 6, ".jsonl") != 0)
		return NULL;
	return buf;
}

/* Append one line to AA_SHIM_LOG; errno is kept. */
static void
log_line(const char *what, long long size, const char *path)
{
	const char *log = getenv("AA_SHIM_LOG");
	char		line[8192];
	int			len;
	int			fd;
	int			save_errno = errno;

	if (log == NULL)
		return;
	len = snprintf(line, sizeof(line), "%s %lld %s\n", what, size, path);
	if (len <= 0 || len >= (int) sizeof(line))
		return;
	fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd >= 0)
	{
		if (write(fd, line, len) != len)
			fprintf(stderr, "fsync_fail_shim: could not write %s\n", log);
		close(fd);
	}
	errno = save_errno;
}

/* Whether this call must fail (see AA_SHIM_CONTROL). */
static int
must_fail(void)
{
	const char *ctl = getenv("AA_SHIM_CONTROL");
	char		buf[16];
	int			fd;
	ssize_t		n;

	if (ctl == NULL || (fd = open(ctl, O_RDONLY)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n >= 4 && strncmp(buf, "once", 4) == 0)
		unlink(ctl);
	return 1;
}

/* fsync or fdatasync through the real function, or fail (see above). */
static int
shim_sync(int fd, const char *name)
{
	sync_fn		real = (sync_fn) dlsym(RTLD_NEXT, name);
	char		buf[4096];
	const char *path = stream_path(fd, buf, sizeof(buf));
	struct stat st;
	long long	size;
	int			rc;

	if (path == NULL)
		return real(fd);
	size = fstat(fd, &st) == 0 ? (long long) st.st_size : -1;
	if (must_fail())
	{
		log_line("fsync fail", size, path);
		errno = EIO;
		return -1;
	}
	rc = real(fd);
	log_line(rc == 0 ? "fsync ok" : "fsync fail", size, path);
	return rc;
}

int
fsync(int fd)
{
	return shim_sync(fd, "fsync");
}

int
fdatasync(int fd)
{
	return shim_sync(fd, "fdatasync");
}

int
ftruncate(int fd, off_t length)
{
	truncate_fn real = (truncate_fn) dlsym(RTLD_NEXT, "ftruncate");
	char		buf[4096];
	int			rc = real(fd, length);

	if (rc == 0 && stream_path(fd, buf, sizeof(buf)) != NULL)
		log_line("ftruncate", (long long) length, buf);
	return rc;
}

int
ftruncate64(int fd, off64_t length)
{
	truncate64_fn real = (truncate64_fn) dlsym(RTLD_NEXT, "ftruncate64");
	char		buf[4096];
	int			rc = real(fd, length);

	if (rc == 0 && stream_path(fd, buf, sizeof(buf)) != NULL)
		log_line("ftruncate", (long long) length, buf);
	return rc;
}

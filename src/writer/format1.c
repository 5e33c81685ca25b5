/*-------------------------------------------------------------------------
 *
 * format1.c
 *		Release 0.1's WAL messages after an upgrade: delivered when they
 *		were written before it, and only then.
 *
 * 0.1 signed an event with the MAC of its transaction id alone, so one
 * signature signed every message of that transaction (common/sign.h).  A
 * server that runs this release writes no such message; those still in
 * the WAL after an upgrade were written before it and are delivered like
 * any other.  Where "before" ends is recorded the first time this
 * release's writer starts: the WAL insert position then, which is after
 * every record the old release's server wrote, in
 * $PGDATA/pg_activity_audit/format1_until.  A version-1 message after it
 * is rejected.
 *
 * This file must not look at the messages themselves (decode.c does).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xlog.h"
#include "storage/fd.h"

#include "activity_audit.h"
#include "common/stream_format.h"
#include "writer/writer.h"

#define AA_FORMAT1_FILE		AA_STATE_DIR "/format1_until"

static XLogRecPtr format1_until = InvalidXLogRecPtr;

/* Read the recorded position; false if there is no file. */
static bool
read_until(XLogRecPtr *lsn)
{
	char		text[64];
	uint32		hi;
	uint32		lo;
	int			fd;
	int			n;

	fd = OpenTransientFile(AA_FORMAT1_FILE, O_RDONLY | PG_BINARY);
	if (fd < 0 && errno == ENOENT)
		return false;
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", AA_FORMAT1_FILE)));
	n = read(fd, text, sizeof(text) - 1);
	CloseTransientFile(fd);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", AA_FORMAT1_FILE)));
	text[n] = '\0';
	if (sscanf(text, "%X/%X", &hi, &lo) != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" does not hold a WAL position", AA_FORMAT1_FILE),
				 errhint("It records where messages of release 0.1 end in the WAL; write the position of the first start after the upgrade into it, or remove it to take the current one.")));
	*lsn = ((uint64) hi << 32) | lo;
	return true;
}

/*
 * At the writer's start: find, or record now, where 0.1's messages end.
 * An error is the worker's to report and retry.
 */
void
aa_format1_init(void)
{
	const char *tmp = AA_FORMAT1_FILE ".tmp";
	XLogRecPtr	now;
	char		text[64];
	int			fd;
	int			len;

	if (read_until(&format1_until))
		return;
	now = GetXLogInsertRecPtr();
	len = snprintf(text, sizeof(text), "%X/%X\n", LSN_FORMAT_ARGS(now));
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	if (!aa_write_all(fd, text, len) || pg_fsync(fd) != 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	CloseTransientFile(fd);
	(void) durable_rename(tmp, AA_FORMAT1_FILE, ERROR);
	format1_until = now;
}

/* Whether a version-1 message at lsn was written before the upgrade. */
bool
aa_format1_allowed(XLogRecPtr lsn)
{
	return lsn < format1_until;
}

/* Where 0.1's messages end, for the writer's messages. */
XLogRecPtr
aa_format1_until(void)
{
	return format1_until;
}

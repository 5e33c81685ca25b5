/*-------------------------------------------------------------------------
 *
 * files.c
 *		Reading the file sink's files one complete line at a time, for
 *		log_stream(), history() and verify().
 *
 * The stream files of audit.log_directory (relative to the data directory
 * unless absolute) are read in name order, which is stream order.  Only
 * complete lines count: a last line without its newline may be one the
 * writer is still appending.  The files are read by this code itself, not
 * through pg_read_file(), so EXECUTE on the readers (which PUBLIC does not
 * have) is the only privilege a reader needs.
 *
 * This file must not write to the stream nor depend on the writer's state
 * (the files are the record); it only reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "common/stream_line.h"
#include "guc.h"
#include "reader/reader.h"

#define READ_CHUNK		(1024 * 1024)

/*
 * The configured directory of the file sink.  The library must have been
 * loaded for audit.log_directory to exist (it always is once preloaded).
 */
static char *
stream_directory(void)
{
	if (aa_log_directory == NULL || aa_log_directory[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit.log_directory is empty"),
				 errhint("Set audit.log_directory to the file sink's directory.")));
	return aa_log_directory;
}

/* qsort comparator: file names in byte order, which is stream order. */
static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The stream files of the directory (aa_is_stream_file_name, regular
 * files), sorted by name.  A directory that does not exist yet holds no
 * events: empty list.  An entry that cannot be examined is an error, as in
 * the offline tool: skipping it could hide a part of the stream.
 */
static void
list_stream_files(LineReader *r)
{
	DIR		   *d;
	struct dirent *de;
	int			cap = 16;

	r->dir = pstrdup(stream_directory());
	r->files = palloc(cap * sizeof(char *));
	r->nfiles = 0;

	d = AllocateDir(r->dir);
	if (d == NULL)
	{
		if (errno == ENOENT)
			return;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open audit log directory \"%s\": %m", r->dir),
				 errhint("Check audit.log_directory and the directory's permissions.")));
	}
	while ((de = ReadDir(d, r->dir)) != NULL)
	{
		char	   *path;
		struct stat st;

		if (!aa_is_stream_file_name(de->d_name))
			continue;
		path = psprintf("%s/%s", r->dir, de->d_name);
		if (stat(path, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat audit log file \"%s\": %m", path),
					 errhint("Every *.jsonl file of audit.log_directory is part of the stream; "
							 "make it readable or move it away.")));
		pfree(path);
		if (!S_ISREG(st.st_mode))
			continue;
		if (r->nfiles == cap)
		{
			cap *= 2;
			r->files = repalloc(r->files, cap * sizeof(char *));
		}
		r->files[r->nfiles++] = pstrdup(de->d_name);
	}
	FreeDir(d);
	if (r->nfiles > 1)
		qsort(r->files, r->nfiles, sizeof(char *), name_cmp);
}

/* Set up a reader over the current stream files (no file open yet). */
void
aa_reader_init(LineReader *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->fileno = -1;
	r->bufsize = READ_CHUNK;
	r->buf = palloc(r->bufsize);
	list_stream_files(r);
}

/* Close the current file, if any. */
void
aa_reader_close_file(LineReader *r)
{
	if (r->fd >= 0)
	{
		CloseTransientFile(r->fd);
		r->fd = -1;
	}
}

/*
 * Open the next file of the stream; false when there is none left.
 */
bool
aa_reader_next_file(LineReader *r)
{
	aa_reader_close_file(r);
	if (r->fileno + 1 >= r->nfiles)
		return false;
	r->fileno++;
	if (r->path)
		pfree(r->path);
	r->path = psprintf("%s/%s", r->dir, r->files[r->fileno]);
	r->fd = OpenTransientFile(r->path, O_RDONLY | PG_BINARY);
	if (r->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open audit log file \"%s\": %m", r->path),
				 errhint("The file was listed in audit.log_directory a moment ago; "
						 "audit files must not be removed or made unreadable while the stream is read.")));
	r->start = r->end = 0;
	r->eof = false;
	r->partial = false;
	r->lineno = 0;
	return true;
}

/*
 * The next complete line of the current file, without its newline, NUL-
 * terminated in place (*line, *len); false at the end of the file.  Bytes
 * after the file's last newline are not a line: r->partial tells there
 * were some.
 */
bool
aa_reader_line_in_file(LineReader *r, char **line, size_t *len)
{
	for (;;)
	{
		char	   *nl = NULL;

		if (r->end > r->start)
			nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl)
		{
			*line = r->buf + r->start;
			*len = nl - *line;
			*nl = '\0';
			r->start = (nl - r->buf) + 1;
			r->lineno++;
			return true;
		}
		if (r->eof)
		{
			r->partial = r->end > r->start;
			return false;
		}
		/* move the unfinished line to the front; grow for a long one */
		if (r->start > 0)
		{
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->bufsize - r->end < READ_CHUNK / 2)
		{
			r->bufsize *= 2;
			r->buf = repalloc_huge(r->buf, r->bufsize);
		}
		{
			ssize_t		n;

			CHECK_FOR_INTERRUPTS();
			n = read(r->fd, r->buf + r->end, r->bufsize - r->end);
			if (n < 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read audit log file \"%s\": %m", r->path),
						 errhint("Check the file's permissions and the disk.")));
			if (n == 0)
				r->eof = true;
			r->end += n;
		}
	}
}

/*
 * The next complete line of the stream, across files; false at the end.
 */
bool
aa_reader_next_line(LineReader *r, char **line, size_t *len)
{
	for (;;)
	{
		if (r->fd >= 0 && aa_reader_line_in_file(r, line, len))
			return true;
		if (!aa_reader_next_file(r))
			return false;
	}
}

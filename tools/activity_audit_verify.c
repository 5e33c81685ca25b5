/*-------------------------------------------------------------------------
 *
 * activity_audit_verify.c
 *		Offline verifier of the activity_audit file stream (SPEC section 6).
 *
 *		activity_audit_verify [-q] DIR
 *
 * Reads every regular file of DIR whose name ends in ".jsonl", in byte-wise
 * name order (which is stream order), and checks the hash chain:
 *
 *	- every line ends with ,"prev_hash":"<64 hex>","hash":"<64 hex>"}
 *	- hash = lowercase hex SHA-256 of (prev_hash followed by the line's text
 *	  up to but excluding its last ,"prev_hash" key)
 *	- the first event of the stream has seq 1 and prev_hash of 64 zeros;
 *	  every later prev_hash is its predecessor's hash, across files
 *	- seq (the integer after the last ,"seq": before ,"lsn") grows by
 *	  exactly 1 from line to line and from file to file.
 *
 * The first problem is reported with its file and line, the seq found there
 * and the "first bad seq": the first seq that cannot be verified, so events
 * 1 .. first bad seq - 1 are intact.  A last line without its trailing
 * newline is an event the writer is still appending: a warning, not counted.
 *
 * Exit status: 0 intact chain, 1 broken chain, 2 usage or I/O error.
 *
 * Standalone: needs neither a database nor libpq.  SHA-256 comes from
 * src/sha256.c, the code the writer hashes the chain with.
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sha256.h"

#define EXIT_INTACT 0
#define EXIT_BROKEN 1
#define EXIT_ERROR	2

#define HEXLEN 64
/* ,"prev_hash":"<64>","hash":"<64>"} */
#define SUFFIX_LEN (14 + HEXLEN + 10 + HEXLEN + 2)

#define READ_CHUNK (4 * 1024 * 1024)


/* ---------------------------------------------------------------------
 * The chain check
 * ---------------------------------------------------------------------
 */

static const char ZERO_HASH[HEXLEN + 1] =
"0000000000000000000000000000000000000000000000000000000000000000";

typedef struct Verifier
{
	const char *dir;
	int			quiet;

	/* chain state */
	int64_t		events;			/* lines verified */
	int64_t		last_seq;		/* seq of the last verified line, 0 if none */
	char		prev_hash[HEXLEN];	/* hash of the last verified line */

	/* current file */
	const char *file;
	int64_t		lineno;
	int64_t		file_events;
	int64_t		file_first_seq;

	/* first problem */
	int			broken;
	char		problem[1024];
	int64_t		first_bad_seq;
} Verifier;

static void fail(Verifier *v, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

static void
fail(Verifier *v, const char *fmt,...)
{
	va_list		ap;
	int			n;

	n = snprintf(v->problem, sizeof(v->problem), "%s:%" PRId64 ": ",
				 v->file, v->lineno);
	if (n < 0 || (size_t) n >= sizeof(v->problem))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(v->problem + n, sizeof(v->problem) - n, fmt, ap);
	va_end(ap);
	v->broken = 1;
	v->first_bad_seq = v->last_seq + 1;
}

/* 1 for the bytes '0'-'9' and 'a'-'f' */
static unsigned char hexdigit[256];

static void
init_hexdigit(void)
{
	int			c;

	for (c = '0'; c <= '9'; c++)
		hexdigit[c] = 1;
	for (c = 'a'; c <= 'f'; c++)
		hexdigit[c] = 1;
}

static int
is_lower_hex(const char *p, size_t n)
{
	unsigned int ok = 1;
	size_t		i;

	for (i = 0; i < n; i++)
		ok &= hexdigit[(unsigned char) p[i]];
	return ok;
}

/* last occurrence of needle (length nlen) starting before "end" in s */
static const char *
find_last(const char *s, size_t end, const char *needle, size_t nlen)
{
	size_t		i;

	if (end < nlen)
		return NULL;
	for (i = end - nlen + 1; i-- > 0;)
	{
		if (s[i] == needle[0] && memcmp(s + i, needle, nlen) == 0)
			return s + i;
	}
	return NULL;
}

/*
 * Check one complete line (without its "\n").  Returns 0 when it is a valid
 * link of the chain, -1 (with v->broken set) otherwise.
 */
static int
check_line(Verifier *v, const char *line, size_t len)
{
	const char *suffix;
	const char *line_prev;
	const char *line_hash;
	const char *lsn;
	const char *seqkey;
	const char *p;
	size_t		cut;
	int64_t		seq = 0;
	int64_t		want = v->last_seq + 1;
	char		computed[HEXLEN + 1];

	if (len == 0)
	{
		fail(v, "empty line");
		return -1;
	}

	/* ,"prev_hash":"<64 hex>","hash":"<64 hex>"} at the very end */
	if (len < SUFFIX_LEN)
	{
		fail(v, "malformed line: too short to end with the "
			 "\"prev_hash\" and \"hash\" keys");
		return -1;
	}
	cut = len - SUFFIX_LEN;
	suffix = line + cut;
	line_prev = suffix + 14;
	line_hash = line_prev + HEXLEN + 10;
	if (memcmp(suffix, ",\"prev_hash\":\"", 14) != 0 ||
		!is_lower_hex(line_prev, HEXLEN) ||
		memcmp(line_prev + HEXLEN, "\",\"hash\":\"", 10) != 0 ||
		!is_lower_hex(line_hash, HEXLEN) ||
		memcmp(line_hash + HEXLEN, "\"}", 2) != 0)
	{
		fail(v, "malformed line: does not end with "
			 ",\"prev_hash\":\"<64 hex>\",\"hash\":\"<64 hex>\"}");
		return -1;
	}

	/* seq: the integer after the last ,"seq": before ,"lsn" */
	lsn = find_last(line, cut, ",\"lsn\"", 6);
	seqkey = lsn ? find_last(line, (size_t) (lsn - line), ",\"seq\":", 7) : NULL;
	if (seqkey == NULL)
	{
		fail(v, "malformed line: no \"seq\" key followed by \"lsn\"");
		return -1;
	}
	p = seqkey + 7;
	if (p >= lsn || *p < '0' || *p > '9')
	{
		fail(v, "malformed line: \"seq\" is not an integer");
		return -1;
	}
	for (; p < lsn; p++)
	{
		if (*p < '0' || *p > '9' || seq > (INT64_MAX - 9) / 10)
		{
			fail(v, "malformed line: \"seq\" is not an integer "
				 "directly followed by \"lsn\"");
			return -1;
		}
		seq = seq * 10 + (*p - '0');
	}

	/* the line's own hash: catches any edit of its text */
	aa_sha256_hex_prefixed(line_prev, HEXLEN, line, cut, computed);
	if (memcmp(computed, line_hash, HEXLEN) != 0)
	{
		fail(v, "seq %" PRId64 ": hash mismatch: the line says %.64s, "
			 "its text hashes to %.64s (line edited)",
			 seq, line_hash, computed);
		return -1;
	}

	/* its place in the stream */
	if (v->events == 0)
	{
		if (seq != 1 && memcmp(line_prev, ZERO_HASH, HEXLEN) != 0)
		{
			fail(v, "stream incomplete at the start: the first event is "
				 "seq %" PRId64 " (prev_hash %.64s), events 1..%" PRId64
				 " are missing", seq, line_prev, seq - 1);
			return -1;
		}
		if (seq != 1)
		{
			fail(v, "seq %" PRId64 ": the first event of the stream must be "
				 "seq 1", seq);
			return -1;
		}
		if (memcmp(line_prev, ZERO_HASH, HEXLEN) != 0)
		{
			fail(v, "seq 1: prev_hash is %.64s, expected 64 zeros for the "
				 "first event of the stream", line_prev);
			return -1;
		}
	}
	else
	{
		if (seq != want)
		{
			if (seq > want)
			{
				char		missing[64];

				if (seq == want + 1)
					snprintf(missing, sizeof(missing), "event %" PRId64, want);
				else
					snprintf(missing, sizeof(missing), "events %" PRId64 "..%" PRId64,
							 want, seq - 1);
				fail(v, "seq %" PRId64 ": seq gap: expected seq %" PRId64
					 " after seq %" PRId64 ", %s missing (%s)",
					 seq, want, v->last_seq, missing,
					 v->lineno == 1 ?
					 "a file missing, or lines deleted or reordered" :
					 "lines deleted or reordered");
			}
			else
				fail(v, "seq %" PRId64 ": seq repeated or out of order: "
					 "expected seq %" PRId64 " after seq %" PRId64
					 " (line inserted or lines reordered)",
					 seq, want, v->last_seq);
			return -1;
		}
		if (memcmp(line_prev, v->prev_hash, HEXLEN) != 0)
		{
			fail(v, "seq %" PRId64 ": prev_hash is %.64s, but the hash of "
				 "seq %" PRId64 " is %.64s (chain broken)",
				 seq, line_prev, v->last_seq, v->prev_hash);
			return -1;
		}
	}

	memcpy(v->prev_hash, line_hash, HEXLEN);
	v->last_seq = seq;
	if (v->file_events == 0)
		v->file_first_seq = seq;
	v->file_events++;
	v->events++;
	return 0;
}

/*
 * Check every line of one file.  Returns 0 when done (chain intact so far
 * or broken: see v->broken), -1 on an I/O error (reported on stderr).
 * "last" tells whether this is the stream's last file, where a final line
 * without "\n" is a partially written event.
 */
static char *buf = NULL;
static size_t bufsize = 0;

static int
check_file(Verifier *v, const char *path, int last, int *partial)
{
	int			fd;
	size_t		start = 0;		/* first unprocessed byte */
	size_t		end = 0;		/* end of valid data */
	size_t		scan = 0;		/* no "\n" in [start, scan) */
	int			eof = 0;

	*partial = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
	{
		fprintf(stderr, "activity_audit_verify: could not open \"%s\": %s\n",
				path, strerror(errno));
		return -1;
	}

	for (;;)
	{
		char	   *nl = NULL;

		if (scan < end)
			nl = memchr(buf + scan, '\n', end - scan);
		if (nl != NULL)
		{
			size_t		len = (size_t) (nl - (buf + start));

			v->lineno++;
			if (check_line(v, buf + start, len) < 0)
				break;
			start = scan = (size_t) (nl - buf) + 1;
			continue;
		}
		scan = end;

		if (eof)
		{
			if (end > start)
			{
				v->lineno++;
				if (last)
				{
					*partial = 1;
					fprintf(stdout, "WARNING: %s:%" PRId64 ": the last line has "
							"no trailing newline (%zu bytes): a partially "
							"written event, not counted\n",
							v->file, v->lineno, end - start);
				}
				else
					fail(v, "incomplete line (no trailing newline, %zu bytes) "
						 "at the end of a file that is not the last",
						 end - start);
			}
			break;
		}

		/* need more data: move the pending part to the front, grow if full */
		if (start > 0)
		{
			memmove(buf, buf + start, end - start);
			end -= start;
			scan -= start;
			start = 0;
		}
		if (bufsize - end < READ_CHUNK / 2)
		{
			size_t		newsize = bufsize * 2;
			char	   *nb = realloc(buf, newsize);

			if (nb == NULL)
			{
				fprintf(stderr, "activity_audit_verify: out of memory reading "
						"\"%s\" (a line longer than %zu bytes)\n",
						path, bufsize);
				close(fd);
				return -1;
			}
			buf = nb;
			bufsize = newsize;
		}
		{
			ssize_t		n = read(fd, buf + end, bufsize - end);

			if (n < 0)
			{
				if (errno == EINTR)
					continue;
				fprintf(stderr, "activity_audit_verify: could not read \"%s\": %s\n",
						path, strerror(errno));
				close(fd);
				return -1;
			}
			if (n == 0)
				eof = 1;
			end += (size_t) n;
		}
	}

	close(fd);
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: byte-wise order */
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"activity_audit_verify checks the hash chain of an activity_audit stream.\n\n"
			"Usage:\n"
			"  activity_audit_verify [-q] DIR\n\n"
			"DIR is the file sink's directory (audit.log_directory, by default\n"
			"$PGDATA/log).  Every regular file of DIR named *.jsonl is read in\n"
			"name order.  No database connection is needed.\n\n"
			"Options:\n"
			"  -q, --quiet    do not list the files checked\n"
			"  -h, --help     show this help and exit\n\n"
			"Exit status: 0 intact chain, 1 broken chain, 2 usage or I/O error.\n");
}

int
main(int argc, char **argv)
{
	Verifier	v;
	const char *dir = NULL;
	DIR		   *d;
	struct dirent *de;
	char	  **names = NULL;
	size_t		nnames = 0;
	size_t		cap = 0;
	size_t		i;
	size_t		files_checked = 0;
	int			partial = 0;
	int			quiet = 0;
	int			argi;

	for (argi = 1; argi < argc; argi++)
	{
		const char *a = argv[argi];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			usage(stdout);
			return EXIT_INTACT;
		}
		else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
			quiet = 1;
		else if (strcmp(a, "--") == 0 && argi + 1 < argc && dir == NULL)
			dir = argv[++argi];
		else if (a[0] == '-' && a[1] != '\0')
		{
			fprintf(stderr, "activity_audit_verify: unknown option \"%s\"\n", a);
			usage(stderr);
			return EXIT_ERROR;
		}
		else if (dir == NULL)
			dir = a;
		else
		{
			fprintf(stderr, "activity_audit_verify: too many arguments\n");
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (dir == NULL)
	{
		fprintf(stderr, "activity_audit_verify: no directory given\n");
		usage(stderr);
		return EXIT_ERROR;
	}

	d = opendir(dir);
	if (d == NULL)
	{
		fprintf(stderr, "activity_audit_verify: could not open directory \"%s\": %s\n",
				dir, strerror(errno));
		return EXIT_ERROR;
	}
	for (;;)
	{
		size_t		nlen;
		char	   *path;
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
		{
			if (errno != 0)
			{
				fprintf(stderr, "activity_audit_verify: could not read directory \"%s\": %s\n",
						dir, strerror(errno));
				closedir(d);
				return EXIT_ERROR;
			}
			break;
		}
		nlen = strlen(de->d_name);
		if (nlen < 6 || strcmp(de->d_name + nlen - 6, ".jsonl") != 0)
			continue;
		path = malloc(strlen(dir) + nlen + 2);
		if (path == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		sprintf(path, "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
		{
			fprintf(stderr, "activity_audit_verify: could not stat \"%s\": %s\n",
					path, strerror(errno));
			closedir(d);
			return EXIT_ERROR;
		}
		free(path);
		if (!S_ISREG(st.st_mode))
			continue;
		if (nnames == cap)
		{
			char	  **nn;

			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof(char *));
			if (nn == NULL)
			{
				fprintf(stderr, "activity_audit_verify: out of memory\n");
				return EXIT_ERROR;
			}
			names = nn;
		}
		names[nnames] = strdup(de->d_name);
		if (names[nnames] == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		nnames++;
	}
	closedir(d);
	if (nnames > 1)
		qsort(names, nnames, sizeof(char *), cmp_names);

	bufsize = 2 * READ_CHUNK;
	buf = malloc(bufsize);
	if (buf == NULL)
	{
		fprintf(stderr, "activity_audit_verify: out of memory\n");
		return EXIT_ERROR;
	}

	memset(&v, 0, sizeof(v));
	v.dir = dir;
	v.quiet = quiet;
	memcpy(v.prev_hash, ZERO_HASH, HEXLEN);

	{
		/* ACTIVITY_AUDIT_VERIFY_PORTABLE=1 forces the portable code */
		const char *force = getenv("ACTIVITY_AUDIT_VERIFY_PORTABLE");
		const char *impl = aa_sha256_choose(force == NULL || strcmp(force, "1") != 0);

		if (impl == NULL)
		{
			fprintf(stderr, "activity_audit_verify: SHA-256 self-test failed\n");
			return EXIT_ERROR;
		}

		init_hexdigit();

		printf("activity_audit_verify: checking the stream in %s\n", dir);
		if (!quiet)
			printf("SHA-256: %s\n", impl);
	}
	if (nnames == 0)
		printf("WARNING: no audit stream files (*.jsonl) in %s\n", dir);

	for (i = 0; i < nnames; i++)
	{
		char	   *path = malloc(strlen(dir) + strlen(names[i]) + 2);
		int			file_partial;

		if (path == NULL)
		{
			fprintf(stderr, "activity_audit_verify: out of memory\n");
			return EXIT_ERROR;
		}
		sprintf(path, "%s/%s", dir, names[i]);
		v.file = names[i];
		v.lineno = 0;
		v.file_events = 0;
		v.file_first_seq = 0;
		if (check_file(&v, path, i + 1 == nnames, &file_partial) < 0)
			return EXIT_ERROR;
		free(path);
		files_checked++;
		partial |= file_partial;
		if (!quiet && !v.broken)
		{
			if (v.file_events > 0)
				printf("  %s: %" PRId64 " events (seq %" PRId64 "..%" PRId64 ")\n",
					   names[i], v.file_events, v.file_first_seq, v.last_seq);
			else
				printf("  %s: no events\n", names[i]);
		}
		if (v.broken)
		{
			if (!quiet)
				printf("  %s: FAILED at line %" PRId64 "\n", names[i], v.lineno);
			break;
		}
	}

	printf("files checked: %zu of %zu\n", files_checked, nnames);
	if (v.events > 0)
		printf("events verified: %" PRId64 " (seq 1..%" PRId64 ")\n",
			   v.events, v.last_seq);
	else
		printf("events verified: 0\n");

	if (v.broken)
	{
		printf("first bad seq: %" PRId64 "\n", v.first_bad_seq);
		printf("problem: %s\n", v.problem);
		printf("RESULT: BROKEN - the hash chain is not intact\n");
		return EXIT_BROKEN;
	}

	if (v.events > 0)
		printf("last hash: %.64s\n", v.prev_hash);
	printf("RESULT: OK - the hash chain is intact%s\n",
		   partial ? " (a partially written last line was not counted)" : "");
	return EXIT_INTACT;
}

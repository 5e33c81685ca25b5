/*-------------------------------------------------------------------------
 *
 * activity_audit_verify.c
 *		Offline verifier of the activity_audit file stream (SPEC section 6).
 *
 *		activity_audit_verify [-q] [--digests FILE] DIR
 *
 * Reads every stream file of DIR (regular files named <something>.jsonl),
 * in byte-wise name order (which is stream order), and checks the hash
 * chain of SPEC section 6.  The rules, and the wording of the first
 * problem found, are those of src/common/stream_line.c, which the server's
 * verify() (src/reader/verify.c) uses too: both give the same verdict on
 * the same directory.  This program mirrors verify()'s reading of the
 * files (src/reader/files.c): the same file selection and order, only
 * complete lines counted.
 *
 * The first problem is reported with its file and line and the "first bad
 * seq": the first seq that cannot be verified, so events 1 .. first bad
 * seq - 1 are intact.  A last line without its trailing newline is an
 * event the writer is still appending: a warning, not counted.  A gap line
 * (WAL the writer could not read, so events were lost; see
 * src/common/stream_format.h) is a link of the chain: a WARNING line for
 * each, a "gaps:" summary worded as verify()'s detail, and still exit 0,
 * since the chain proves the stream as the writer wrote it.
 *
 * Exit status: 0 intact chain (with or without gaps), 1 broken chain, 2
 * usage or I/O error.
 *
 * A frontend program in the manner of pg_waldump: needs neither a database
 * nor libpq, only libpgcommon/libpgport for logging.
 *
 *-------------------------------------------------------------------------
 */
#define FRONTEND 1
#include "postgres_fe.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/logging.h"
#include "common/sha256.h"
#include "common/digest.h"
#include "common/stream_line.h"

#define EXIT_INTACT 0
#define EXIT_BROKEN 1
#define EXIT_ERROR	2

#define READ_CHUNK (4 * 1024 * 1024)

static const char *progname;

/* --digests: the digests the stream must hold (NULL without the option) */
static AADigestCheck *digest_check = NULL;

/*
 * The read buffer: one complete line must fit, so it grows for long ones.
 */
static char *buf = NULL;
static size_t bufsize = 0;

/* A WARNING for a gap line just verified (c->line_is_gap). */
static void
report_gap(const AAChainCheck *c, const char *file, int64_t lineno)
{
	char		what[AA_GAP_TEXT_MAX];

	aa_gap_text(&c->line_gap, what, sizeof(what));
	printf("WARNING: %s:%" PRId64 ": seq %" PRIu64 ": gap: events were lost: %s "
		   "(found %s); transactions with txid below %" PRIu64 " may lack events\n",
		   file, lineno, c->last_seq, what, c->line_gap.detected,
		   c->line_gap.txid_upper_bound);
}

/*
 * Feed every complete line of one file to the chain check.  Returns 0 when
 * done (chain intact so far or broken: see c->broken), -1 on an I/O error
 * (reported).  "last" tells whether this is the stream's last file, where a
 * final line without "\n" is an event being written; *events counts the
 * file's lines that were links of the chain.
 */
static int
check_file(AAChainCheck *c, const char *file, const char *path, int last,
		   int *partial, int64_t *events)
{
	int			fd;
	size_t		start = 0;		/* first unprocessed byte */
	size_t		end = 0;		/* end of valid data */
	size_t		scan = 0;		/* no "\n" in [start, scan) */
	int			eof = 0;
	int64_t		lineno = 0;

	*partial = 0;
	*events = 0;
	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		pg_log_error("could not open file \"%s\": %m", path);
		return -1;
	}

	while (!c->broken)
	{
		char	   *nl = NULL;

		if (scan < end)
			nl = memchr(buf + scan, '\n', end - scan);
		if (nl != NULL)
		{
			lineno++;
			if (aa_chain_line(c, file, lineno, buf + start, (size_t) (nl - (buf + start))))
			{
				(*events)++;
				if (c->line_is_gap)
					report_gap(c, file, lineno);
				if (digest_check)
					aa_digest_check_line(digest_check, c->last_seq, c->prev_hash);
			}
			start = scan = (size_t) (nl - buf) + 1;
			continue;
		}
		scan = end;

		if (eof)
		{
			if (end > start)
			{
				lineno++;
				if (last)
				{
					*partial = 1;
					printf("WARNING: %s:%" PRId64 ": the last line has no trailing "
						   "newline (%zu bytes): a partially written event, not counted\n",
						   file, lineno, end - start);
				}
				else
					aa_chain_incomplete_file(c, file, lineno, end - start);
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
			char	   *nb = realloc(buf, bufsize * 2);

			if (nb == NULL)
			{
				pg_log_error("out of memory reading \"%s\" (a line longer than %zu bytes)",
							 path, bufsize);
				close(fd);
				return -1;
			}
			buf = nb;
			bufsize *= 2;
		}
		{
			ssize_t		n = read(fd, buf + end, bufsize - end);

			if (n < 0)
			{
				if (errno == EINTR)
					continue;
				pg_log_error("could not read file \"%s\": %m", path);
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

/* qsort comparator: byte-wise name order (strcmp compares unsigned). */
static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The stream files of dir, sorted (the rule of src/reader/files.c): names
 * accepted by aa_is_stream_file_name that are regular files; an entry that
 * cannot be examined is an error.  Returns the count, or -1 (reported).
 */
static int
list_stream_files(const char *dir, char ***names_out)
{
	DIR		   *d;
	struct dirent *de;
	char	  **names = NULL;
	int			n = 0;
	int			cap = 0;

	d = opendir(dir);
	if (d == NULL)
	{
		pg_log_error("could not open directory \"%s\": %m", dir);
		return -1;
	}
	while (errno = 0, (de = readdir(d)) != NULL)
	{
		char	   *path;
		struct stat st;

		if (!aa_is_stream_file_name(de->d_name))
			continue;
		path = psprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
		{
			pg_log_error("could not stat file \"%s\": %m", path);
			closedir(d);
			return -1;
		}
		pfree(path);
		if (!S_ISREG(st.st_mode))
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			names = pg_realloc(names, cap * sizeof(char *));
		}
		names[n++] = pg_strdup(de->d_name);
	}
	if (errno != 0)
	{
		pg_log_error("could not read directory \"%s\": %m", dir);
		closedir(d);
		return -1;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_names);
	*names_out = names;
	return n;
}

static void
usage(void)
{
	printf("%s checks the hash chain of an activity_audit stream.\n\n", progname);
	printf("Usage:\n  %s [OPTION]... DIR\n\n", progname);
	printf("DIR is the file sink's directory (audit.log_directory, by default\n"
		   "$PGDATA/log).  Every regular file of DIR named *.jsonl is read in\n"
		   "name order.  No database connection is needed.\n\n");
	printf("Options:\n"
		   "  -d, --digests=FILE  also check the digests in FILE (AUDIT DIGEST lines\n"
		   "                 of the server log, or one digest per line); their\n"
		   "                 signatures are checked by verify(digests) in SQL\n"
		   "  -q, --quiet    do not list the files checked\n"
		   "  -V, --version  output version information, then exit\n"
		   "  -?, --help     show this help, then exit\n\n");
	printf("A gap line (WAL the writer could not read: events were lost) is\n"
		   "reported with a WARNING line and does not break the chain.\n\n");
	printf("Exit status: 0 intact chain (also with gaps), 1 broken chain,\n"
		   "2 usage or I/O error.\n");
}

/*
 * The command line, in pg_waldump's manner: --help and --version first,
 * then getopt_long.  Returns the directory; exits on a usage error.
 */
static const char *
parse_args(int argc, char **argv, int *quiet, const char **digests)
{
	static struct option long_options[] = {
		{"digests", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, '?'},
		{"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			option;

	if (argc > 1)
	{
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)
		{
			usage();
			exit(EXIT_INTACT);
		}
		if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		{
			puts("activity_audit_verify (activity_audit) 0.1");
			exit(EXIT_INTACT);
		}
	}
	while ((option = getopt_long(argc, argv, "d:hqV?", long_options, NULL)) != -1)
	{
		switch (option)
		{
			case 'd':
				*digests = optarg;
				break;
			case 'q':
				*quiet = 1;
				break;
			case 'h':
				usage();
				exit(EXIT_INTACT);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
				exit(EXIT_ERROR);
		}
	}
	if (optind >= argc)
	{
		pg_log_error("no directory given");
		fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
		exit(EXIT_ERROR);
	}
	if (optind + 1 < argc)
	{
		pg_log_error("too many command-line arguments (first is \"%s\")", argv[optind + 1]);
		fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
		exit(EXIT_ERROR);
	}
	return argv[optind];
}

/*
 * The digests of a file: every line that holds one (a server-log line with
 * "AUDIT DIGEST: ", or a digest alone); other lines are skipped, so a whole
 * server log can be given.  Exits (2) if the file cannot be read or holds
 * no digest.
 */
static AADigestCheck *
read_digests(const char *path)
{
	FILE	   *f = fopen(path, "r");
	AADigest   *d = NULL;
	int			n = 0;
	int			cap = 0;
	char		line[8192];
	AADigestCheck *c;

	if (f == NULL)
	{
		pg_log_error("could not open file \"%s\": %m", path);
		exit(EXIT_ERROR);
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		AADigest	one;

		if (strstr(line, "{\"seq\":") == NULL || !aa_digest_parse(line, strlen(line), &one))
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			d = pg_realloc(d, cap * sizeof(AADigest));
		}
		d[n++] = one;
	}
	if (ferror(f))
	{
		pg_log_error("could not read file \"%s\": %m", path);
		exit(EXIT_ERROR);
	}
	fclose(f);
	if (n == 0)
	{
		pg_log_error("no digest in \"%s\"", path);
		exit(EXIT_ERROR);
	}
	c = pg_malloc(sizeof(AADigestCheck));
	aa_digest_check_init(c, d, n);
	return c;
}

int
main(int argc, char **argv)
{
	AAChainCheck chain;
	const char *dir;
	char	  **names = NULL;
	int			nnames;
	int			i;
	int			files_checked = 0;
	int			partial = 0;
	int			quiet = 0;
	const char *impl;
	const char *force;
	const char *digests = NULL;

	pg_logging_init(argv[0]);
	progname = get_progname(argv[0]);
	dir = parse_args(argc, argv, &quiet, &digests);
	if (digests)
		digest_check = read_digests(digests);

	nnames = list_stream_files(dir, &names);
	if (nnames < 0)
		exit(EXIT_ERROR);

	/* ACTIVITY_AUDIT_VERIFY_PORTABLE=1 forces the portable SHA-256 code */
	force = getenv("ACTIVITY_AUDIT_VERIFY_PORTABLE");
	impl = aa_sha256_choose(force == NULL || strcmp(force, "1") != 0);
	if (impl == NULL)
		pg_fatal("SHA-256 self-test failed");

	bufsize = 2 * READ_CHUNK;
	buf = pg_malloc(bufsize);
	aa_chain_init(&chain);
	if (digest_check)
	{
		chain.start_ok = aa_digest_anchor;
		chain.start_arg = digest_check;
	}

	printf("activity_audit_verify: checking the stream in %s\n", dir);
	if (!quiet)
		printf("SHA-256: %s\n", impl);
	if (nnames == 0)
		printf("WARNING: no audit stream files (*.jsonl) in %s\n", dir);

	for (i = 0; i < nnames && !chain.broken; i++)
	{
		char	   *path = psprintf("%s/%s", dir, names[i]);
		int			file_partial;
		int64_t		file_events;
		uint64_t	first_seq = chain.last_seq + 1;

		if (check_file(&chain, names[i], path, i + 1 == nnames, &file_partial,
					   &file_events) < 0)
			exit(EXIT_ERROR);
		pfree(path);
		files_checked++;
		partial |= file_partial;
		if (quiet)
			continue;
		if (chain.broken)
			printf("  %s: FAILED\n", names[i]);
		else if (file_events > 0)
			printf("  %s: %" PRId64 " events (seq %" PRIu64 "..%" PRIu64 ")\n",
				   names[i], file_events,
				   first_seq == 1 ? chain.first_seq : first_seq, chain.last_seq);
		else
			printf("  %s: no events\n", names[i]);
	}

	printf("files checked: %d of %d\n", files_checked, nnames);
	if (chain.verified > 0)
		printf("events verified: %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n",
			   chain.verified, chain.first_seq, chain.last_seq);
	else
		printf("events verified: 0\n");

	if (chain.broken)
	{
		printf("first bad seq: %" PRIu64 "\n", chain.first_bad_seq);
		printf("problem: %s\n", chain.detail);
		printf("RESULT: BROKEN - the hash chain is not intact\n");
		return EXIT_BROKEN;
	}
	if (chain.verified > 0)
		printf("last hash: %.64s\n", chain.prev_hash);
	if (digest_check)
	{
		aa_digest_check_end(digest_check, chain.last_seq);
		if (digest_check->failed)
		{
			printf("first bad seq: %" PRIu64 "\n", digest_check->bad_seq);
			printf("problem: %s\n", digest_check->detail);
			printf("RESULT: BROKEN - the stream does not hold what a digest says\n");
			return EXIT_BROKEN;
		}
		printf("digests: %d found in the stream", digest_check->matched);
		if (digest_check->anchor_seq)
			printf(", which starts after the digest of seq %" PRIu64, digest_check->anchor_seq);
		if (digest_check->before_first)
			printf(", %d before its first line", digest_check->before_first);
		printf("\n");
	}
	if (chain.gaps > 0)
	{
		char		note[AA_CHAIN_DETAIL_LEN];

		aa_chain_gap_note(&chain, note, sizeof(note));
		printf("gaps: %s\n", note);
	}
	printf("RESULT: OK - the hash chain is intact%s%s\n",
		   chain.gaps > 0 ? ", but events were lost (see the WARNING lines)" : "",
		   partial ? " (a partially written last line was not counted)" : "");
	return EXIT_INTACT;
}

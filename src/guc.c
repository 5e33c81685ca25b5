/*-------------------------------------------------------------------------
 *
 * guc.c
 *		Every audit.* setting, defined in one place: the session context
 *		of events (who did it) and the writer's delivery settings.
 *
 * The context settings are ordinary GUCs so that SET LOCAL, RESET,
 * transaction rollback and connection poolers behave the way PostgreSQL
 * users expect.  The JSON-valued ones are checked and normalized once, when
 * they are set: an invalid value is refused right there with an error
 * naming the setting, and the stored value is compact, single-line ASCII
 * JSON that the trigger can copy into events without looking at it again.
 * List settings are parsed into named bits when set (audit.sink), so a
 * typo is refused by SET or reload instead of silently dropping a sink.
 *
 * This file owns the variables and their check hooks; it must not build
 * events nor act on the settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "common/json_out.h"
#include "guc.h"

/* session context (capture) */
char	   *aa_user_id = NULL;
char	   *aa_user_info = NULL;
char	   *aa_request_id = NULL;
char	   *aa_extra = NULL;
char	   *aa_service_name = NULL;
bool		aa_enabled = true;

/* delivery (writer, readers) */
char	   *aa_sink = NULL;
int			aa_sinks = AA_SINK_FILE;
char	   *aa_log_directory = NULL;
char	   *aa_log_filename = NULL;
int			aa_rotation_size = 100 * 1024;
int			aa_rotation_age = 24 * 60;
int			aa_file_mode = 0600;
int			aa_writer_memory = 64 * 1024;
int			aa_digest_interval = 60;

/* limits (capture) */
int			aa_max_context_size = 64;
int			aa_max_event_size = 64 * 1024;
int			aa_retained_warning = 1024 * 1024;

/* the shape of the WAL messages (capture) */
int			aa_wal_format = AA_WAL_FORMAT_COMPACT;
char	   *aa_key_file = NULL;
uint64		aa_context_generation = 1;

static const struct config_enum_entry wal_format_options[] = {
	{"compact", AA_WAL_FORMAT_COMPACT, false},
	{"full", AA_WAL_FORMAT_FULL, false},
	{NULL, 0, false}
};

/*
 * Assign hook of the context settings: a new value means a new header in
 * the compact WAL format (capture/event.c), which is written only when
 * this number moves.  Also called when SET LOCAL is undone.
 */
static void
assign_context(const char *newval, void *extra)
{
	aa_context_generation++;
}

/*
 * Whether a context value fits audit.max_context_size; otherwise the SET
 * fails with a message naming the setting and the limit (and not holding
 * the value, which may be huge).  Context values go into every event and
 * header; unbounded, one session could make events nobody can read back.
 */
static bool
context_size_ok(const char *name, const char *value)
{
	size_t		len = value ? strlen(value) : 0;

	if (len <= (size_t) aa_max_context_size * 1024)
		return true;
	GUC_check_errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED);
	GUC_check_errmsg("value of \"%s\" is too long (%zu bytes)", name, len);
	GUC_check_errdetail("audit.max_context_size allows at most %d kB per audit.* setting.",
						aa_max_context_size);
	GUC_check_errhint("Put less into the setting, or have a superuser raise audit.max_context_size.");
	return false;
}

/* Check hooks of the plain context settings: their size only. */
static bool
check_user_id(char **newval, void **extra, GucSource source)
{
	return context_size_ok("audit.user_id", *newval);
}

static bool
check_request_id(char **newval, void **extra, GucSource source)
{
	return context_size_ok("audit.request_id", *newval);
}

static bool
check_service_name(char **newval, void **extra, GucSource source)
{
	return context_size_ok("audit.service_name", *newval);
}

static bool check_json_object(const char *name, char **newval);

/* Check hooks of the JSON context settings (see check_json_object). */
static bool
check_user_info(char **newval, void **extra, GucSource source)
{
	return check_json_object("audit.user_info", newval);
}

static bool
check_extra(char **newval, void **extra, GucSource source)
{
	return check_json_object("audit.extra", newval);
}

/*
 * GUC check hook for audit.user_info and audit.extra: accept the empty
 * string (unset) or a JSON object, and replace the value with its compact
 * form.  Check hooks must not throw, so errors are reported through
 * GUC_check_errdetail and a false return, which makes SET fail with
 * "invalid value for parameter ..." naming the setting.
 */
static bool
check_json_object(const char *name, char **newval)
{
	StringInfoData buf;
	const char *p;
	char	   *compact;
	char	   *detail = NULL;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!context_size_ok(name, *newval))
		return false;

	if (!aa_json_valid(*newval, &detail))
	{
		GUC_check_errdetail("The value is not valid JSON: %s", detail);
		GUC_check_errhint("Use a JSON object, for example '{\"email\": \"a@example.com\"}'.");
		return false;
	}

	for (p = *newval; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	if (*p != '{')
	{
		GUC_check_errdetail("The value must be a JSON object, not another kind of JSON value.");
		GUC_check_errhint("Use a JSON object, for example '{\"email\": \"a@example.com\"}'.");
		return false;
	}

	initStringInfo(&buf);
	aa_json_compact(&buf, *newval, strlen(*newval));
	compact = strdup(buf.data);
	pfree(buf.data);
	if (compact == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	free(*newval);
	*newval = compact;
	return true;
}

/*
 * audit.sink: a comma list of file and log.  Checked when set, so a typo
 * is refused by SET/reload instead of silently dropping a sink.
 */
static bool
check_sink(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *items;
	ListCell   *lc;
	int		   *flags;

	if (!SplitIdentifierString(raw, ',', &items))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	if (items == NIL)
	{
		GUC_check_errdetail("At least one sink is needed: file, log or both.");
		return false;
	}
	flags = (int *) malloc(sizeof(int));
	if (flags == NULL)
		return false;
	*flags = 0;
	foreach(lc, items)
	{
		char	   *item = lfirst(lc);

		if (pg_strcasecmp(item, "file") == 0)
			*flags |= AA_SINK_FILE;
		else if (pg_strcasecmp(item, "log") == 0)
			*flags |= AA_SINK_LOG;
		else
		{
			GUC_check_errdetail("Unknown sink \"%s\"; the sinks are file and log.", item);
			free(flags);
			return false;
		}
	}
	*extra = flags;
	return true;
}

/* Keep the parsed sinks as bits (see check_sink). */
static void
assign_sink(const char *newval, void *extra)
{
	aa_sinks = *((int *) extra);
}

/* audit.log_directory: not empty. */
static bool
check_log_directory(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0')
	{
		GUC_check_errdetail("The audit file directory must not be empty.");
		return false;
	}
	return true;
}

/* audit.log_filename: a file name, not a path, on one line. */
static bool
check_log_filename(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0' || strchr(*newval, '/') != NULL ||
		strchr(*newval, '\n') != NULL)
	{
		GUC_check_errdetail("The audit file name pattern must be a non-empty file name without \"/\".");
		return false;
	}
	return true;
}

/* audit.file_mode shown in octal, like log_file_mode. */
static const char *
show_file_mode(void)
{
	static char buf[12];

	snprintf(buf, sizeof(buf), "%04o", aa_file_mode);
	return buf;
}

/*
 * Define every setting.  Called from _PG_init, before the audit prefix is
 * reserved so that any other audit.* name is refused.
 */
void
aa_define_gucs(void)
{
	DefineCustomStringVariable("audit.user_id",
							   "Application user id recorded in audit events as user_id.",
							   "Empty means null.",
							   &aa_user_id,
							   "",
							   PGC_USERSET,
							   0,
							   check_user_id, assign_context, NULL);

	DefineCustomStringVariable("audit.user_info",
							   "JSON object describing the application user, recorded as user_info.",
							   "Must be a JSON object; empty means null.",
							   &aa_user_info,
							   "",
							   PGC_USERSET,
							   0,
							   check_user_info, assign_context, NULL);

	DefineCustomStringVariable("audit.request_id",
							   "Correlation id recorded in audit events as request_id.",
							   "Empty means null.",
							   &aa_request_id,
							   "",
							   PGC_USERSET,
							   0,
							   check_request_id, assign_context, NULL);

	DefineCustomStringVariable("audit.extra",
							   "JSON object recorded in audit events as extra.",
							   "Must be a JSON object; empty means {}.",
							   &aa_extra,
							   "",
							   PGC_USERSET,
							   0,
							   check_extra, assign_context, NULL);

	DefineCustomStringVariable("audit.service_name",
							   "Name of the service recorded in audit events as service_name.",
							   NULL,
							   &aa_service_name,
							   "default",
							   PGC_USERSET,
							   0,
							   check_service_name, assign_context, NULL);

	DefineCustomBoolVariable("audit.enabled",
							 "Whether changes to tracked tables produce audit events.",
							 "Only superusers can turn it off.",
							 &aa_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("audit.sink",
							   "Where the writer delivers audit events: file, log, or both.",
							   NULL, &aa_sink, "file", PGC_SIGHUP, GUC_LIST_INPUT,
							   check_sink, assign_sink, NULL);
	DefineCustomStringVariable("audit.log_directory",
							   "Directory of the audit file sink, relative to the data directory unless absolute.",
							   NULL, &aa_log_directory, "log", PGC_SIGHUP, 0,
							   check_log_directory, NULL, NULL);
	DefineCustomStringVariable("audit.log_filename",
							   "strftime pattern of the audit file names.",
							   NULL, &aa_log_filename, "audit-%Y%m%dT%H%M%S.jsonl",
							   PGC_SIGHUP, 0, check_log_filename, NULL, NULL);
	DefineCustomIntVariable("audit.rotation_size",
							"Start a new audit file past this size (0: never).",
							NULL, &aa_rotation_size, 100 * 1024, 0, INT_MAX / 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.rotation_age",
							"Start a new audit file after this long (0: never).",
							NULL, &aa_rotation_age, 24 * 60, 0, INT_MAX / 60,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.writer_memory",
							"Memory the writer may use for events of open transactions.",
							"Past it, the events of the largest open transaction are dropped from memory and read back from the WAL at its commit.",
							&aa_writer_memory, 64 * 1024, 64, INT_MAX / 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.retained_warning",
							"Log a WARNING when the writer's replication slot keeps more WAL than this (0: never).",
							"Once each time the WAL kept grows past it, naming the oldest open transaction with events, which holds it.",
							&aa_retained_warning, 1024 * 1024, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomEnumVariable("audit.wal_format",
							 "Shape of the audit messages in the WAL: compact or full.",
							 "compact writes what a statement's events on a table share once; full writes every event self-contained, for logical-decoding consumers.",
							 &aa_wal_format, AA_WAL_FORMAT_COMPACT, wal_format_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.file_mode",
							"Permissions of new audit files.",
							"The value is a numeric mode as accepted by chmod (octal with a leading 0).",
							&aa_file_mode, 0600, 0000, 0777,
							PGC_SIGHUP, 0, NULL, NULL, show_file_mode);
	DefineCustomIntVariable("audit.digest_interval",
							"How often the writer logs a digest of the stream's head (AUDIT DIGEST) while events are delivered (0: never).",
							NULL, &aa_digest_interval, 60, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.max_context_size",
							"Largest value a session may give an audit.* context setting.",
							"SET of a longer audit.user_id, user_info, request_id, extra or service_name fails.",
							&aa_max_context_size, 64, 1, AA_MAX_CONTEXT_SIZE_CAP,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("audit.max_event_size",
							"Largest audit message the trigger writes; a change whose event is larger fails.",
							NULL, &aa_max_event_size, 64 * 1024, 16, AA_MAX_EVENT_SIZE_CAP,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	/* PostgreSQL allows postmaster-only settings in a preloaded library only */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("audit.key_file",
								   "File of the keys that sign and verify audit events; empty: the data directory's key.",
								   "An absolute path outside the data directory, one key of 32 hex digits per line; the first signs, all verify.",
								   &aa_key_file, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
								   NULL, NULL, NULL);
}

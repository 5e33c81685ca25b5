/*-------------------------------------------------------------------------
 *
 * context.c
 *		The audit.* session settings: who is making the change.
 *
 * An application tells the database who its user is with
 * SET LOCAL audit.user_id = '42' (or activity_audit.set_context()).  These
 * settings are ordinary GUCs so that SET LOCAL, RESET, transaction rollback
 * and connection poolers behave the way PostgreSQL users expect.
 *
 * The JSON-valued settings are checked and normalized once, when they are
 * set: an invalid value is refused right there with an error naming the
 * setting, and the stored value is compact, single-line ASCII JSON that the
 * trigger can copy into events without looking at it again.
 *
 * This file must not build events; it only owns the settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "activity_audit.h"
#include "capture/capture.h"
#include "common/json_out.h"

char	   *aa_user_id = NULL;
char	   *aa_user_info = NULL;
char	   *aa_request_id = NULL;
char	   *aa_extra = NULL;
char	   *aa_service_name = NULL;
bool		aa_enabled = true;

/*
 * GUC check hook for audit.user_info and audit.extra: accept the empty
 * string (unset) or a JSON object, and replace the value with its compact
 * form.  Check hooks must not throw, so errors are reported through
 * GUC_check_errdetail and a false return, which makes SET fail with
 * "invalid value for parameter ..." naming the setting.
 */
static bool
check_json_object(char **newval, void **extra, GucSource source)
{
	StringInfoData buf;
	const char *p;
	char	   *compact;
	char	   *detail = NULL;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;

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
 * Define the session-context settings.  Called from _PG_init, before the
 * audit prefix is reserved so that any other audit.* name is refused.
 */
void
aa_define_context_gucs(void)
{
	DefineCustomStringVariable("audit.user_id",
							   "Application user id recorded in audit events as user_id.",
							   "Empty means null.",
							   &aa_user_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("audit.user_info",
							   "JSON object describing the application user, recorded as user_info.",
							   "Must be a JSON object; empty means null.",
							   &aa_user_info,
							   "",
							   PGC_USERSET,
							   0,
							   check_json_object, NULL, NULL);

	DefineCustomStringVariable("audit.request_id",
							   "Correlation id recorded in audit events as request_id.",
							   "Empty means null.",
							   &aa_request_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("audit.extra",
							   "JSON object recorded in audit events as extra.",
							   "Must be a JSON object; empty means {}.",
							   &aa_extra,
							   "",
							   PGC_USERSET,
							   0,
							   check_json_object, NULL, NULL);

	DefineCustomStringVariable("audit.service_name",
							   "Name of the service recorded in audit events as service_name.",
							   NULL,
							   &aa_service_name,
							   "default",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("audit.enabled",
							 "Whether changes to tracked tables produce audit events.",
							 "Only superusers can turn it off.",
							 &aa_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

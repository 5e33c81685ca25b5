/*-------------------------------------------------------------------------
 *
 * json_out.h
 *		JSON text output every stage may use: strings escaped to ASCII,
 *		compaction and validation of JSON text, and the UTC time text of
 *		events ("2026-11-27T11:06:32.403127Z") and its parser.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_JSON_OUT_H
#define AA_JSON_OUT_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

extern void aa_json_string(StringInfo buf, const char *s, int len);
extern void aa_json_string_body(StringInfo buf, const char *s, int len);
extern bool aa_json_compact(StringInfo buf, const char *json, int len);
extern bool aa_json_valid(char *json, char **detail);
extern bool aa_json_syntax_ok(char *json, int len, char **detail);

#define AA_UTC_TEXT_LEN		27	/* YYYY-MM-DDTHH:MM:SS.ffffffZ */
extern void aa_format_utc(TimestampTz ts, char *out);
extern bool aa_parse_utc(const char *s, int len, TimestampTz *ts);

#endif							/* AA_JSON_OUT_H */

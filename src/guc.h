/*-------------------------------------------------------------------------
 *
 * guc.h
 *		The audit.* settings (guc.c), read by every stage.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_GUC_H
#define AA_GUC_H

/* session context, recorded in events */
extern char *aa_user_id;
extern char *aa_user_info;
extern char *aa_request_id;
extern char *aa_extra;
extern char *aa_service_name;
extern bool aa_enabled;

/* audit.sink, parsed into these bits */
#define AA_SINK_FILE		(1 << 0)	/* the JSON Lines stream */
#define AA_SINK_LOG			(1 << 1)	/* the server log */
extern char *aa_sink;
extern int	aa_sinks;

/* delivery (reloadable) */
extern char *aa_log_directory;
extern char *aa_log_filename;
extern int	aa_rotation_size;	/* kB, 0 = never */
extern int	aa_rotation_age;	/* minutes, 0 = never */
extern int	aa_file_mode;
extern int	aa_writer_memory;	/* kB */
extern int	aa_digest_interval;	/* s, 0 = never */

/*
 * Limits on what a session can put into an event (kB): the writer must be
 * able to read back and put together any event the trigger writes.  A
 * compact row's event holds its header, its row and the new values of its
 * changes again: at most three messages of the cap, 384MB, which leaves
 * room below MaxAllocSize (1GB) for the line and for the server log's
 * escaping of it (AA_MAX_DELIVERED_EVENT, writer/writer.h).
 */
#define AA_MAX_CONTEXT_SIZE_CAP	1024	/* 1MB per setting */
#define AA_MAX_EVENT_SIZE_CAP	(128 * 1024)	/* 128MB per message */
extern int	aa_max_context_size;
extern int	aa_max_event_size;
extern int	aa_retained_warning;	/* kB, 0 = never */

/* audit.key_file (common/event_key.c; postmaster start only) */
extern char *aa_key_file;

/* audit.wal_format (capture/event.c, common/message.h) */
#define AA_WAL_FORMAT_COMPACT	0
#define AA_WAL_FORMAT_FULL		1
extern int	aa_wal_format;

/* moves whenever a context setting above is assigned */
extern uint64 aa_context_generation;

extern void aa_define_gucs(void);

#endif							/* AA_GUC_H */

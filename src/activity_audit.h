/*-------------------------------------------------------------------------
 *
 * activity_audit.h
 *		The module's entry points that every stage may use: whether the
 *		library was preloaded, and the fail-closed checks of it and of
 *		wal_level.
 *
 * The stages have headers of their own (common/, capture/, writer/,
 * reader/); a file includes only those of its own stage and of common/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ACTIVITY_AUDIT_H
#define ACTIVITY_AUDIT_H

/* activity_audit.c: module entry point */
extern bool aa_preloaded;
extern void aa_require_preload(void);
extern void aa_require_auditable(void);

#endif							/* ACTIVITY_AUDIT_H */

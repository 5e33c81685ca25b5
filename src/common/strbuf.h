/*-------------------------------------------------------------------------
 *
 * strbuf.h
 *		Appending to a StringInfo with the capacity check inline.
 *
 * An event is some sixty small pieces, and nearly all of them fit without
 * enlarging, so the per-piece function call of appendBinaryStringInfo() is
 * worth saving.  Used by every stage that builds text.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_STRBUF_H
#define AA_STRBUF_H

#include "lib/stringinfo.h"

static inline void
aa_put(StringInfo buf, const char *data, int len)
{
	if (buf->len + len >= buf->maxlen)
		enlargeStringInfo(buf, len);
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static inline void
aa_put_char(StringInfo buf, char c)
{
	if (buf->len + 1 >= buf->maxlen)
		enlargeStringInfo(buf, 1);
	buf->data[buf->len++] = c;
	buf->data[buf->len] = '\0';
}

#define aa_put_lit(buf, lit)	aa_put((buf), "" lit, sizeof(lit) - 1)

/* A function, not a macro: its argument is often a call, evaluated once. */
static inline void
aa_put_str(StringInfo buf, const char *str)
{
	aa_put(buf, str, strlen(str));
}

#endif							/* AA_STRBUF_H */

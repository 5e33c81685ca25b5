/*-------------------------------------------------------------------------
 *
 * assemble.c
 *		The compact WAL format's messages put together into events,
 *		byte for byte the events the full format carries.
 *
 * At a commit, decode.c hands over the transaction's messages in WAL
 * order: headers are kept (the last AA_HEADER_WINDOW of them, which is as
 * far back as a row may refer, common/message.h), and each row becomes an
 * event from its header's parts and its own.  Only the writer's own
 * messages get here (signed, common/sign.h), so a malformed one is a bug,
 * reported and not delivered rather than guessed at.
 *
 * This file must not read WAL nor write to a sink.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "common/message.h"
#include "common/strbuf.h"
#include "writer/writer.h"

/* One kept header, split into the parts an event takes from it. */
typedef struct AAHeader
{
	uint64		number;			/* 0: free */
	bool		valid;			/* it could be split */
	StringInfoData text;		/* the header's text before its signature */
	int			level_len;		/* "level":..,"name":.. at text + head */
	int			head;			/* where "head"'s members start */
	int			request;		/* where "request_id" starts */
	int			request_len;	/* up to the end of "head"'s members */
	int			model;			/* the model name's JSON text */
	int			model_len;
	int			tail;			/* where "tail"'s members start */
	int			tail_len;
} AAHeader;

static AAHeader headers[AA_HEADER_WINDOW];
static int	next_slot = 0;
static bool headers_ready = false;

/* Forget the headers of the previous commit. */
void
aa_assemble_begin(void)
{
	int			i;

	if (!headers_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (i = 0; i < AA_HEADER_WINDOW; i++)
			initStringInfo(&headers[i].text);
		MemoryContextSwitchTo(old);
		headers_ready = true;
	}
	for (i = 0; i < AA_HEADER_WINDOW; i++)
		headers[i].number = 0;
	next_slot = 0;
}

/* Where 'what' first occurs in [from, from + len) of text, or -1. */
static int
find(const char *text, int from, int len, const char *what)
{
	int			wlen = strlen(what);
	int			i;

	for (i = from; i + wlen <= from + len; i++)
		if (text[i] == what[0] && memcmp(text + i, what, wlen) == 0)
			return i;
	return -1;
}

/* Split a header's text (see message.h); false if it is not one. */
static bool
split_header(AAHeader *h)
{
	const char *t = h->text.data;
	int			len = h->text.len;
	int			head = sizeof(AA_HEADER_OPEN) - 1;
	int			tail_at;
	int			head_len;
	int			request;
	int			model;

	if (len < head + 2 || memcmp(t, AA_HEADER_OPEN, head) != 0 || t[len - 1] != '}')
		return false;
	/* "head" holds only strings and null: its end is the first "},"tail":{" */
	tail_at = find(t, head, len - head, AA_HEADER_TAIL);
	if (tail_at < 0)
		return false;
	head_len = tail_at - head;
	request = find(t, head, head_len, AA_HEADER_REQUEST);
	model = find(t, head, head_len, AA_HEADER_MODEL);
	if (request < 0 || model < request || t[tail_at - 1] != '"')
		return false;
	h->head = head;
	h->level_len = request - head;
	h->request = request + 1;
	h->request_len = tail_at - h->request;
	h->model = model + sizeof(AA_HEADER_MODEL) - 1;
	h->model_len = tail_at - 1 - h->model;
	h->tail = tail_at + sizeof(AA_HEADER_TAIL) - 1;
	h->tail_len = len - 1 - h->tail;
	return h->model_len >= 0 && h->tail_len > 0;
}

/* Keep a header for the rows after it, in place of the oldest kept one. */
void
aa_assemble_header(AAEvent *ev)
{
	AAHeader   *h = &headers[next_slot];

	next_slot = (next_slot + 1) % AA_HEADER_WINDOW;
	h->number = ev->number;
	resetStringInfo(&h->text);
	aa_put(&h->text, ev->data, ev->len);
	h->valid = split_header(h);
	if (!h->valid)
		ereport(WARNING,
				(errmsg("activity_audit writer cannot read the header message at %X/%X",
						LSN_FORMAT_ARGS(ev->lsn)),
				 errdetail("The events of the rows that refer to it are not delivered."),
				 errhint("This is a bug in activity_audit; please report it with the message's text from pg_waldump.")));
}

/* The end of the JSON string that starts at text[i] (its closing quote). */
static int
string_end(const char *text, int i, int len)
{
	for (i++; i < len; i++)
	{
		if (text[i] == '\\')
			i++;
		else if (text[i] == '"')
			return i;
	}
	return -1;
}

/*
 * The end of the JSON object that starts at text[i] (its closing brace),
 * with strings skipped, or -1.
 */
static int
object_end(const char *text, int i, int len)
{
	int			depth = 0;

	for (; i < len; i++)
	{
		char		c = text[i];

		if (c == '"')
		{
			if ((i = string_end(text, i, len)) < 0)
				return -1;
		}
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
		{
			if (--depth == 0)
				return i;
		}
	}
	return -1;
}

/*
 * The end of the JSON value that starts at text[i] (its last character),
 * or -1.
 */
static int
value_end(const char *text, int i, int len)
{
	if (i >= len)
		return -1;
	if (text[i] == '"')
		return string_end(text, i, len);
	if (text[i] == '{' || text[i] == '[')
		return object_end(text, i, len);
	while (i + 1 < len && text[i + 1] != ',' && text[i + 1] != '}' && text[i + 1] != ']')
		i++;
	return i;
}

/*
 * One member "key":value of the object at text[*pos] (just after its '{' or
 * a ','): the key's text with its quotes, and the value's.  False at the
 * object's end or on malformed text.
 */
static bool
next_member(const char *text, int len, int *pos, int *key, int *key_len,
			int *val, int *val_len)
{
	int			i = *pos;
	int			k_end;
	int			v_end;

	if (i >= len || text[i] != '"' || (k_end = string_end(text, i, len)) < 0 ||
		k_end + 1 >= len || text[k_end + 1] != ':' ||
		(v_end = value_end(text, k_end + 2, len)) < 0 || v_end + 1 >= len)
		return false;
	*key = i;
	*key_len = k_end - i + 1;
	*val = k_end + 2;
	*val_len = v_end - *val + 1;
	*pos = v_end + 2;			/* past the ',' or the closing brace */
	return true;
}

/*
 * The event's "changes" from a compact row's {"<column>":<old>,...}: each
 * column's new value is its value in instance_repr, whose columns come in
 * the same order, so one pass over both finds them.
 */
static bool
append_changes(StringInfo out, const char *repr, int repr_len,
			   const char *changes, int changes_len)
{
	int			rpos = 1;
	int			cpos = 1;
	bool		first = true;

	if (repr[0] != '{' || changes[0] != '{' || changes[changes_len - 1] != '}')
		return false;
	aa_put_char(out, '{');
	while (cpos < changes_len - 1)
	{
		int			ck, ck_len, cv, cv_len;
		int			rk, rk_len, rv, rv_len;

		if (!next_member(changes, changes_len, &cpos, &ck, &ck_len, &cv, &cv_len))
			return false;
		do
		{
			if (!next_member(repr, repr_len, &rpos, &rk, &rk_len, &rv, &rv_len))
				return false;	/* a changed column that the row lacks */
		} while (rk_len != ck_len || memcmp(repr + rk, changes + ck, ck_len) != 0);
		if (!first)
			aa_put_char(out, ',');
		first = false;
		aa_put(out, changes + ck, ck_len);
		aa_put_lit(out, ":{\"old\":");
		aa_put(out, changes + cv, cv_len);
		aa_put_lit(out, ",\"new\":");
		aa_put(out, repr + rv, rv_len);
		aa_put_char(out, '}');
	}
	aa_put_char(out, '}');
	return true;
}

/*
 * Put together the event of a compact row into out (reset first).  False,
 * with *why set, if the row or its header cannot be read; the caller
 * reports it.
 */
bool
aa_assemble_row(AAEvent *ev, StringInfo out, const char **why)
{
	const char *t = ev->data;
	int			len = ev->len;
	AAHeader   *h = NULL;
	int			i;
	int			ts_end;
	int			type;
	int			type_end;
	int			id;
	int			id_end;
	int			repr;
	int			repr_end;

	for (i = 0; i < AA_HEADER_WINDOW; i++)
		if (headers[i].number == ev->number && ev->number != 0)
			h = &headers[i];
	if (h == NULL || !h->valid)
	{
		*why = h == NULL ? "It refers to a header that is not among the transaction's last ones: it was in WAL that was lost (see the gap line before), or this is a bug." :
			"Its header could not be read.";
		return false;
	}

	/* ["<timestamp>","<event_type>",<instance_id>,<instance_repr>[,<changes>] */
	*why = "It is not a row message.";
	if (len < 2 || t[0] != '[' || t[1] != '"' ||
		(ts_end = string_end(t, 1, len)) < 0 ||
		ts_end + 2 >= len || t[ts_end + 1] != ',' || t[ts_end + 2] != '"')
		return false;
	type = ts_end + 3;
	if ((type_end = string_end(t, type - 1, len)) < 0 ||
		type_end + 2 >= len || t[type_end + 1] != ',')
		return false;
	id = type_end + 2;
	if (len - id >= 4 && memcmp(t + id, "null", 4) == 0)
		id_end = id + 3;
	else if (t[id] != '"' || (id_end = string_end(t, id, len)) < 0)
		return false;
	if (id_end + 2 >= len || t[id_end + 1] != ',')
		return false;
	repr = id_end + 2;
	repr_end = len - 1;
	if (type_end - type == 6 && memcmp(t + type, "UPDATE", 6) == 0)
	{
		/* the changes follow the row's object */
		if ((repr_end = object_end(t, repr, len)) < 0 ||
			repr_end + 2 >= len || t[repr_end + 1] != ',')
			return false;
	}

	/* the event is at most the header, the row and its new values again */
	if ((Size) h->text.len + 2 * (Size) len + 1024 > AA_MAX_DELIVERED_EVENT)
	{
		*why = "It is too large to put together into one event.";
		return false;
	}
	resetStringInfo(out);
	aa_put_lit(out, AA_EVENT_OPEN);
	aa_put(out, t + 1, ts_end);	/* the timestamp with its quotes */
	aa_put_char(out, ',');
	aa_put(out, h->text.data + h->head, h->level_len);
	aa_put_lit(out, ",\"message\":\"");
	aa_put(out, t + type, type_end - type);
	aa_put_lit(out, " event by ");
	aa_put(out, h->text.data + h->model, h->model_len);
	if (t[id] == '"')
	{
		aa_put_lit(out, " (id: ");
		aa_put(out, t + id + 1, id_end - id - 1);
		aa_put_char(out, ')');
	}
	aa_put_lit(out, "\",");
	aa_put(out, h->text.data + h->request, h->request_len);
	aa_put_lit(out, ",\"event_type\":");
	aa_put(out, t + type - 1, type_end - type + 2);
	aa_put_lit(out, ",\"instance_id\":");
	aa_put(out, t + id, id_end - id + 1);
	aa_put_lit(out, ",\"instance_repr\":");
	aa_put(out, t + repr, repr_end - repr + 1);
	if (repr_end + 1 < len)
	{
		aa_put_lit(out, ",\"changes\":");
		if (!append_changes(out, t + repr, repr_end - repr + 1,
							t + repr_end + 2, len - repr_end - 2))
		{
			*why = "Its changes do not match its row.";
			return false;
		}
	}
	aa_put_char(out, ',');
	aa_put(out, h->text.data + h->tail, h->tail_len);
	aa_put_char(out, '}');
	return true;
}

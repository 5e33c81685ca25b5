/*-------------------------------------------------------------------------
 *
 * message.h
 *		What the trigger writes into the WAL (capture/event.c) and the
 *		writer reassembles into events (writer/assemble.c): the layout of
 *		our logical-decoding messages, version 2.
 *
 * Every message is transactional, has prefix "activity_audit" and ends
 * with its signature (common/sign.h).  There are three kinds, told apart
 * by their first bytes:
 *
 * event (audit.wal_format = full): the event JSON as delivered, with one
 *	 more key at the end:
 *		{"timestamp":...,"txid":T,"sig":"T:N:MAC"}
 *
 * header (compact): what the following rows of one relation share, in two
 *	 objects whose members are, byte for byte, the event's keys before
 *	 "message" and between "message" and "event_type" ("head"), and those
 *	 after "instance_repr"/"changes" ("tail"):
 *		{"head":{"level":..,"name":..,"request_id":..,"service_name":..,"model":..},
 *		 "tail":{"user_id":.., ...,"backend_pid":..,"txid":T},"sig":"T:N:MAC"}
 *
 * row (compact): a JSON array of the row's own part and the number N of its
 *	 header (the header's counter):
 *		["<timestamp>","<event_type>",<instance_id>,<instance_repr>[,<changes>],N,"T:N:MAC"]
 *	 <changes> is there for UPDATE only, as {"<column>":<old value>,...}:
 *	 the event's {"<column>":{"old":<old value>,"new":<value in
 *	 instance_repr>},...}, columns in the same order as in instance_repr.
 *	 <instance_id> is a JSON string or null, <instance_repr> an object (null
 *	 for TRUNCATE).  The event's
 *	 "message" is derived: "<event_type> event by <model>" followed, when
 *	 there is an instance_id, by " (id: <instance_id's text>)".
 *
 * A row refers only to a header of its own subtransaction, written before
 * it, and among the last AA_HEADER_WINDOW headers of its transaction; the
 * writer keeps that many.  The header's "model" is its last member, and
 * "head" holds only strings and null, so the writer can split it at the
 * first ,"request_id": and ,"model":" without parsing values.
 *
 * Room for later kinds: a message whose first bytes are none of these is
 * not ours (the writer rejects it); new kinds get a prefix of their own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AA_MESSAGE_H
#define AA_MESSAGE_H

#define AA_HEADER_OPEN		"{\"head\":{"
#define AA_HEADER_TAIL		"},\"tail\":{"
#define AA_HEADER_REQUEST	",\"request_id\":"
#define AA_HEADER_MODEL		",\"model\":\""
#define AA_EVENT_OPEN		"{\"timestamp\":"
#define AA_ROW_OPEN			"[\""

/* How many headers back a row may refer to. */
#define AA_HEADER_WINDOW	16

/*
 * How many rows may refer to one header: a loss of WAL (max_slot_wal_keep_size)
 * that takes a header makes at most this many of the rows after it
 * impossible to put together.
 */
#define AA_HEADER_ROWS		1000

#endif							/* AA_MESSAGE_H */

--
-- reader_escapes: lines whose json escapes jsonb cannot hold (\u0000, a
-- lone surrogate, or in a non-UTF8 database a character its encoding
-- lacks) are delivered as written and never make log_stream() or
-- history() fail: such an escape shows in the returned jsonb as its text.
-- Runs last: its lines stay in the stream.
--
SELECT count(*) AS leftover FROM audit_raw();
CREATE TABLE esc_t (id int PRIMARY KEY, doc json);
SELECT activity_audit.track('esc_t');
INSERT INTO esc_t VALUES
  (1, '{"x":"\u0000"}'),
  (2, '"\ud800 alone"'),
  (3, '"low \udc00 alone"'),
  (4, '"pair \ud83d\ude00"'),
  (5, '"euro \u20ac, e acute \u00e9"');
UPDATE esc_t SET doc = '"\u0000 again"' WHERE id = 1;
SELECT activity_audit.flush() AS flushed;

-- every row's history reads, in order, escapes jsonb cannot hold as text
SELECT h.instance_id, h.event_type, h.event->'instance_repr'->'doc' AS doc
  FROM generate_series(1, 5) AS i,
       LATERAL activity_audit.history('esc_t', i::text) AS h
 WHERE regress_new(h.seq)
 ORDER BY h.seq;
SELECT h.event->'changes' AS changes
  FROM activity_audit.history('esc_t', '1') AS h
 WHERE h.event_type = 'UPDATE' AND regress_new(h.seq);

-- the whole stream, and windows of it, read without error
SELECT count(*) FILTER (WHERE table_name = 'esc_t' AND regress_new(seq)) AS esc_events,
       count(*) FILTER (WHERE event ? 'unreadable_line') AS unreadable
  FROM activity_audit.log_stream();
SELECT count(*) AS esc_in_window
  FROM activity_audit.log_stream(now() - interval '1 day', now() + interval '1 day')
 WHERE table_name = 'esc_t' AND regress_new(seq);
-- the files keep what was written: the chain is intact
SELECT ok FROM activity_audit.verify();

-- A LATIN1 database reads the same stream: e acute exists there and is
-- converted; the euro sign and the emoji do not, and stay text.
SELECT current_database() AS origdb \gset
SELECT seq AS base FROM regress_stream_base \gset
CREATE DATABASE esc_latin1 TEMPLATE template0 ENCODING 'LATIN1'
  LC_COLLATE 'C' LC_CTYPE 'C';
\c esc_latin1
CREATE EXTENSION activity_audit;
SELECT instance_id, event->'instance_repr'->>'doc' = E'euro \\u20ac, e acute \u00e9' AS euro_kept_e_converted
  FROM activity_audit.log_stream()
 WHERE table_name = 'esc_t' AND instance_id = '5' AND seq > :base;
SELECT instance_id, event->'instance_repr'->>'doc' AS doc
  FROM activity_audit.log_stream()
 WHERE table_name = 'esc_t' AND instance_id IN ('2', '4') AND seq > :base
 ORDER BY seq;
\c :origdb
DROP DATABASE esc_latin1;
SELECT count(*) AS drained FROM audit_raw();

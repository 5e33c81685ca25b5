--
-- reader: the SQL readers of the delivered stream (SPEC section 6):
-- log_stream(since, until), history(target, instance_id) and verify(),
-- and who may call them.  The stream holds the events of the earlier tests
-- too, so the checks below are about this test's table or about the whole
-- stream as a set; varying values (seq, timestamps, hashes) are never shown.
--
-- Drain the test_decoding slot: earlier tests must have left nothing.
SELECT count(*) AS leftover FROM audit_raw();

--
-- Some committed changes of one tracked table, with the clock read between
-- them (an event's "timestamp" is the time its row changed).
--
CREATE TABLE reader_t (id int PRIMARY KEY, v text);
SELECT activity_audit.track('reader_t', model_name => 'Reader');
-- a table of the same name in another schema: not part of its history
CREATE SCHEMA reader_s;
CREATE TABLE reader_s.reader_t (id int PRIMARY KEY, v text);
SELECT activity_audit.track('reader_s.reader_t');

SELECT clock_timestamp() AS t0 \gset
INSERT INTO reader_t VALUES (1, 'one');
INSERT INTO reader_s.reader_t VALUES (1, 'other schema');
SELECT clock_timestamp() AS t1 \gset
UPDATE reader_t SET v = 'uno' WHERE id = 1;
INSERT INTO reader_t VALUES (2, 'two');
SELECT clock_timestamp() AS t2 \gset
BEGIN;
SELECT activity_audit.set_context(user_id => 'u-7', request_id => 'req-1');
DELETE FROM reader_t WHERE id = 1;
COMMIT;
-- never delivered: rolled back
BEGIN;
INSERT INTO reader_t VALUES (3, 'rolled back');
ROLLBACK;
SELECT clock_timestamp() AS t3 \gset
SELECT activity_audit.flush() AS flushed;

--
-- log_stream() without bounds: every line of every file, in seq order
-- (seq is 1, 2, ... N), and each row's columns are its event's keys.
--
SELECT count(*) > 0 AS has_events,
       count(DISTINCT seq - o) = 1 AS seq_consecutive,
       bool_and(ts = (event->>'timestamp')::timestamptz) AS ts_is_timestamp,
       bool_and(seq = (event->>'seq')::bigint) AS seq_is_key,
       bool_and(event_type IS NOT DISTINCT FROM event->>'event_type'
                AND schema_name IS NOT DISTINCT FROM event->>'schema'
                AND table_name IS NOT DISTINCT FROM event->>'table'
                AND model IS NOT DISTINCT FROM event->>'model'
                AND instance_id IS NOT DISTINCT FROM event->>'instance_id'
                AND user_id IS NOT DISTINCT FROM event->>'user_id'
                AND request_id IS NOT DISTINCT FROM event->>'request_id') AS columns_are_keys
  FROM activity_audit.log_stream() WITH ORDINALITY
       AS s(seq, ts, event_type, schema_name, table_name, model, instance_id,
            user_id, request_id, event, o);

-- The same events as the files hold, line for line (this run's; read here
-- with pg_read_file() as superuser, for comparison).
WITH lines AS (
  SELECT row_number() OVER (ORDER BY d.f COLLATE "C", l.i) AS n, l.line::jsonb AS e
    FROM (SELECT f FROM pg_ls_dir(regress_stream_dir()) f WHERE f LIKE 'audit-%.jsonl') d,
         LATERAL (SELECT x.line, x.i, count(*) OVER () AS cnt
                    FROM regexp_split_to_table(pg_read_file(regress_stream_dir() || '/' || d.f), E'\n')
                         WITH ORDINALITY x(line, i)) l
   WHERE l.i < l.cnt
     AND EXISTS (SELECT FROM regress_line_keys(l.line) k WHERE regress_new(k.seq)))
SELECT count(*) AS mismatches
  FROM lines
  FULL JOIN (SELECT * FROM activity_audit.log_stream() WHERE regress_new(seq)) s
    ON s.seq = (lines.e->>'seq')::bigint
 WHERE lines.e IS DISTINCT FROM s.event;

-- This test's events, in stream order: the rolled-back insert is absent,
-- the other schema's table is there under its own names.
SELECT rank() OVER (ORDER BY seq) AS rank, event_type, schema_name, table_name,
       model, instance_id, user_id, request_id
  FROM activity_audit.log_stream()
 WHERE table_name = 'reader_t' AND regress_new(seq)
 ORDER BY seq;

--
-- Bounds: since is inclusive, until exclusive, both on "timestamp".
--
SELECT event_type, model, instance_id
  FROM activity_audit.log_stream(since => :'t1')
 WHERE table_name = 'reader_t' ORDER BY seq;
SELECT event_type, model, instance_id
  FROM activity_audit.log_stream(until => :'t1')
 WHERE table_name = 'reader_t' AND ts >= :'t0' ORDER BY seq;
SELECT event_type, model, instance_id
  FROM activity_audit.log_stream(:'t1', :'t2')
 WHERE table_name = 'reader_t' ORDER BY seq;
-- every returned ts is inside the window, and nothing in the window is left out
SELECT (SELECT count(*) FROM activity_audit.log_stream(:'t0', :'t3')) =
       (SELECT count(*) FROM activity_audit.log_stream() WHERE ts >= :'t0' AND ts < :'t3') AS same_as_filter,
       (SELECT bool_and(ts >= :'t1' AND ts < :'t2') FROM activity_audit.log_stream(:'t1', :'t2')) AS inside;
-- the exact timestamp of the UPDATE: included as since, excluded as until
SELECT ts AS t_upd FROM activity_audit.log_stream(:'t1', :'t2')
 WHERE table_name = 'reader_t' AND event_type = 'UPDATE' \gset
SELECT event_type, instance_id FROM activity_audit.log_stream(since => :'t_upd', until => :'t2')
 WHERE schema_name = 'public' AND table_name = 'reader_t' ORDER BY seq;
SELECT event_type, instance_id FROM activity_audit.log_stream(since => :'t1', until => :'t_upd')
 WHERE schema_name = 'public' AND table_name = 'reader_t' ORDER BY seq;
-- an empty window, and one entirely in the future
SELECT count(*) AS empty_window FROM activity_audit.log_stream(:'t2', :'t1');
SELECT count(*) AS future FROM activity_audit.log_stream(since => now() + interval '1 day');
-- reading only the first rows of the stream ends cleanly (no leaked file)
SELECT count(*) AS first_two FROM (SELECT * FROM activity_audit.log_stream() LIMIT 2) s;

--
-- history(): every event of one row of one table, in order; not the
-- other schema's table of the same name, not row 2.
--
SELECT rank() OVER (ORDER BY seq) AS rank, event_type, schema_name, table_name,
       instance_id, user_id, event->'instance_repr' AS instance_repr,
       event->'changes' AS changes
  FROM activity_audit.history('reader_t', '1') WHERE regress_new(seq) ORDER BY seq;
SELECT event_type, schema_name, instance_id, event->'instance_repr' AS instance_repr
  FROM activity_audit.history('reader_s.reader_t', '1') WHERE regress_new(seq);
SELECT event_type, instance_id FROM activity_audit.history('public.reader_t', '2')
 WHERE regress_new(seq);
-- in seq order as returned, and the same rows log_stream() has
SELECT bool_and(seq > prev) AS ascending FROM (
  SELECT seq, lag(seq, 1, 0::bigint) OVER () AS prev
    FROM activity_audit.history('reader_t', '1')) h;
SELECT count(*) AS mismatches FROM
  (SELECT seq, event FROM activity_audit.history('reader_t', '1')) h
  FULL JOIN (SELECT seq, event FROM activity_audit.log_stream()
              WHERE schema_name = 'public' AND table_name = 'reader_t'
                AND instance_id = '1' AND event->>'db' = current_database()) s USING (seq)
 WHERE h.event IS DISTINCT FROM s.event;
-- no such row; no such table
SELECT count(*) AS none FROM activity_audit.history('reader_t', '999');
SELECT count(*) FROM activity_audit.history('reader_nope', '1');

--
-- verify(): the intact stream checks out, every line counted.
--
SELECT ok, events = (SELECT count(*) FROM activity_audit.log_stream()) AS all_events,
       first_bad_seq, detail ~ '^seq [0-9]+ to [0-9]+ intact in [0-9]+ file\(s\)$' AS detail_ok
  FROM activity_audit.verify();

--
-- Privileges: PUBLIC may not execute the readers; a superuser grants
-- USAGE on the schema and EXECUTE, and that is enough (no superuser, no
-- pg_read_server_files: the library reads the files itself).
--
CREATE ROLE regress_auditor;
SELECT has_function_privilege('regress_auditor', 'activity_audit.log_stream(timestamptz, timestamptz)', 'EXECUTE') AS log_stream,
       has_function_privilege('regress_auditor', 'activity_audit.history(regclass, text)', 'EXECUTE') AS history,
       has_function_privilege('regress_auditor', 'activity_audit.verify()', 'EXECUTE') AS verify;
SET ROLE regress_auditor;
SELECT count(*) FROM activity_audit.log_stream();
SELECT * FROM activity_audit.verify();
RESET ROLE;
GRANT USAGE ON SCHEMA activity_audit TO regress_auditor;
SET ROLE regress_auditor;
SELECT count(*) FROM activity_audit.log_stream();
SELECT count(*) FROM activity_audit.history('reader_t', '1');
SELECT * FROM activity_audit.verify();
RESET ROLE;
GRANT EXECUTE ON FUNCTION activity_audit.log_stream(timestamptz, timestamptz),
                          activity_audit.history(regclass, text),
                          activity_audit.verify() TO regress_auditor;
SET ROLE regress_auditor;
SELECT count(*) > 0 AS reads_stream FROM activity_audit.log_stream();
SELECT event_type, instance_id FROM activity_audit.history('reader_t', '1')
 WHERE regress_new(seq) ORDER BY seq;
SELECT ok, first_bad_seq FROM activity_audit.verify();
RESET ROLE;

-- The stream holds every database's events; an auditor granted the readers
-- in one database sees that database's only, unless it could read the
-- files anyway (superuser, pg_read_server_files).
SELECT current_database() AS regress_db \gset
SET client_min_messages = warning;  -- left over from a run that failed?
DROP DATABASE IF EXISTS regress_audit_other;
RESET client_min_messages;
CREATE DATABASE regress_audit_other;
\c regress_audit_other
SET client_min_messages = warning;
CREATE EXTENSION activity_audit;
CREATE TABLE other_t (id int PRIMARY KEY, v text);
SELECT activity_audit.track('other_t');
INSERT INTO other_t VALUES (1, 'other database');
SELECT activity_audit.flush('30s') AS flushed;
\c :regress_db
SET client_min_messages = warning;
CREATE VIEW reader_dbs AS
SELECT count(*) FILTER (WHERE event->>'db' = 'regress_audit_other') AS other_db,
       count(*) FILTER (WHERE event->>'db' = current_database()) > 0 AS this_db,
       count(*) FILTER (WHERE event->>'table' = 'other_t') AS other_t
  FROM activity_audit.log_stream() WHERE regress_new(seq);
GRANT SELECT ON reader_dbs TO regress_auditor;
SELECT * FROM reader_dbs;
SET ROLE regress_auditor;
SELECT * FROM reader_dbs;
RESET ROLE;
GRANT pg_read_server_files TO regress_auditor;
SET ROLE regress_auditor;
SELECT * FROM reader_dbs;
RESET ROLE;
REVOKE pg_read_server_files FROM regress_auditor;
DROP VIEW reader_dbs;
DROP DATABASE regress_audit_other;

REVOKE ALL ON FUNCTION activity_audit.log_stream(timestamptz, timestamptz),
                       activity_audit.history(regclass, text),
                       activity_audit.verify() FROM regress_auditor;
REVOKE USAGE ON SCHEMA activity_audit FROM regress_auditor;
DROP ROLE regress_auditor;

-- Drain the slot for the next test.
SELECT count(*) >= 0 AS drained FROM audit_raw();
DROP TABLE reader_t;
DROP TABLE reader_s.reader_t;
DROP SCHEMA reader_s;

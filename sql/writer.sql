--
-- writer: the background worker that delivers committed events, in commit
-- order and exactly once, to the JSON Lines files of the file sink
-- (audit.log_directory, by default $PGDATA/log/audit-*.jsonl).  Each delivered line is the event (without
-- its "sig" key) followed by "seq", "lsn", "committed_at", "prev_hash" and
-- "hash".  The files are read back here with pg_read_file(), so this test
-- needs a superuser.
--
-- Drain the test_decoding slot: earlier tests must have left nothing.
SELECT count(*) AS leftover FROM audit_raw();

--
-- Helpers.
--
-- Every line of every audit file, in stream order (file names sort in
-- stream order), numbered 1, 2, ... across files.  What follows a file's
-- last newline is not a line; it is checked to be empty further down.
CREATE FUNCTION writer_lines() RETURNS TABLE(n bigint, file text, line text)
LANGUAGE sql AS $$
  SELECT row_number() OVER (ORDER BY d.f COLLATE "C", l.i), d.f, l.line
    FROM (SELECT f FROM pg_ls_dir(regress_stream_dir()) f WHERE f LIKE 'audit-%.jsonl') d,
         LATERAL (SELECT x.line, x.i, count(*) OVER () AS cnt
                    FROM regexp_split_to_table(pg_read_file(regress_stream_dir() || '/' || d.f), E'\n')
                         WITH ORDINALITY x(line, i)) l
   WHERE l.i < l.cnt
   ORDER BY 1
$$;

-- The same lines with their stream keys (from the tail) and, for this
-- run's lines, parsed (one that is not JSON makes this fail; earlier runs'
-- lines may hold what jsonb cannot).
CREATE FUNCTION writer_stream()
RETURNS TABLE(n bigint, line text, seq bigint, lsn pg_lsn, prev_hash text, hash text, e jsonb)
LANGUAGE sql AS $$
  SELECT n, line, k.seq, k.lsn, k.prev_hash, k.hash,
         CASE WHEN regress_new(k.seq) THEN line::jsonb END
    FROM writer_lines() LEFT JOIN LATERAL regress_line_keys(line) k ON true
   ORDER BY n
$$;

-- This run's delivered events of table writer_t, in stream order: their rank, the
-- rank of their transaction (by commit LSN), and what changed.
CREATE FUNCTION writer_t_events()
RETURNS TABLE(rank bigint, xact bigint, event_type text, instance_id text, instance_repr jsonb, changes jsonb)
LANGUAGE sql AS $$
  SELECT row_number() OVER (ORDER BY n),
         dense_rank() OVER (ORDER BY (e->>'lsn')::pg_lsn),
         e->>'event_type', e->>'instance_id', e->'instance_repr', e->'changes'
    FROM writer_stream()
   WHERE regress_new(e) AND e->>'schema' = 'public' AND e->>'table' = 'writer_t'
   ORDER BY n
$$;

--
-- The writer runs, and flush() returns true: everything committed so far
-- (by the earlier tests too) is delivered.
--
SELECT activity_audit.flush() AS flushed;
SELECT pid IS NOT NULL AS running,
       pid <> pg_backend_pid() AS own_process,
       delivered_lsn > '0/0' AS delivered_something,
       read_lsn >= delivered_lsn AS read_before_delivered,
       lag_bytes >= 0 AS lag_ok,
       last_error IS NULL AS no_error
  FROM activity_audit.writer_status() s;
SELECT events_delivered AS delivered_before, forged_rejected AS forged_before,
       (SELECT coalesce(max(seq), 0) FROM activity_audit.log_stream()) AS seq_before
  FROM activity_audit.writer_status() \gset

-- Its replication slot keeps the WAL it has not delivered yet.
SELECT slot_type, active, restart_lsn IS NOT NULL AS keeps_wal
  FROM pg_replication_slots WHERE slot_name = 'activity_audit';

--
-- A few committed transactions, and some work that never commits.
--
CREATE TABLE writer_t (id int PRIMARY KEY, v text, prev_hash text);
SELECT activity_audit.track('writer_t');
SELECT pg_current_wal_insert_lsn() AS lsn_before \gset
-- 1: two rows; the column named prev_hash puts a ,"prev_hash" key inside
-- instance_repr: the chain must use the line's own (last) one
INSERT INTO writer_t VALUES (1, 'one', 'x'), (2, 'two', NULL);
-- 2: an update and a delete in one transaction
BEGIN;
UPDATE writer_t SET v = 'uno' WHERE id = 1;
DELETE FROM writer_t WHERE id = 2;
COMMIT;
-- never: a rolled-back transaction
BEGIN;
INSERT INTO writer_t VALUES (3, 'rolled back');
ROLLBACK;
-- 3: rows 4 and 6 (row 5 undone by ROLLBACK TO SAVEPOINT; the update of
-- row 1 in the released savepoint kept)
BEGIN;
INSERT INTO writer_t VALUES (4, 'four');
SAVEPOINT s;
INSERT INTO writer_t VALUES (5, 'undone');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
UPDATE writer_t SET prev_hash = 'y' WHERE id = 1;
RELEASE SAVEPOINT s2;
INSERT INTO writer_t VALUES (6, E'quote " backslash \\ newline \n tab \t ,"prev_hash":"z"');
COMMIT;
-- never: a statement that fails after its first row
INSERT INTO writer_t VALUES (7, 'failed'), (1, 'duplicate key');
-- 4: TRUNCATE
TRUNCATE writer_t;
SELECT pg_current_wal_insert_lsn() AS lsn_after \gset

-- The events as the trigger wrote them into the WAL, for comparison below.
CREATE TEMP TABLE writer_raw AS
  SELECT ordinality AS rank, raw FROM audit_raw() WITH ORDINALITY raw;

SELECT activity_audit.flush() AS flushed;

-- Exactly the committed events, in commit order, each once.
SELECT * FROM writer_t_events();

-- The stream as it is now, parsed once for the checks below (it holds the
-- events of the earlier tests too, some of them large).
CREATE TEMP TABLE writer_snap AS SELECT * FROM writer_stream();

-- Each delivered line is the event in the WAL (put together from the WAL
-- messages by audit_raw(), as a logical-decoding consumer would), byte for
-- byte, then the stream's keys.
SELECT rank, left(s.line, length(r.raw) - 1) = left(r.raw, -1) AS same_event_text,
       substr(s.line, length(r.raw)) ~ '^,"seq":[0-9]+,"lsn":"[0-9A-F]+/[0-9A-F]+","committed_at":"[^"]+","prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$' AS stream_keys
  FROM (SELECT row_number() OVER (ORDER BY n) AS rank, line
          FROM writer_snap
         WHERE regress_new(e) AND e->>'schema' = 'public' AND e->>'table' = 'writer_t') s
  FULL JOIN writer_raw r USING (rank)
 ORDER BY rank;

-- Keys in the contract's order, with the stream's keys at the end; no
-- "sig" (the writer strips the signature).
SELECT DISTINCT e->>'event_type' AS event_type,
       (SELECT string_agg(k, ',' ORDER BY o)
          FROM json_object_keys(line::json) WITH ORDINALITY k(k, o)) AS keys
  FROM writer_snap
 WHERE regress_new(e) AND e->>'schema' = 'public' AND e->>'table' = 'writer_t'
 ORDER BY 1;

-- lsn is the commit's: one per transaction, between the LSNs taken before
-- and after the writes, and the same txid and committed_at for every
-- event of a transaction; committed_at is RFC 3339 UTC with microseconds,
-- not before the event's timestamp and not in the future.
SELECT dense_rank() OVER (ORDER BY min((e->>'lsn')::pg_lsn)) AS xact,
       count(*) AS events,
       count(DISTINCT e->>'lsn') = 1 AS one_lsn,
       count(DISTINCT e->>'txid') = 1 AS one_txid,
       count(DISTINCT e->>'committed_at') = 1 AS one_committed_at,
       bool_and((e->>'lsn')::pg_lsn BETWEEN :'lsn_before' AND :'lsn_after') AS lsn_in_range,
       bool_and(e->>'committed_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS committed_at_rfc3339,
       bool_and((e->>'committed_at')::timestamptz >= (e->>'timestamp')::timestamptz) AS committed_after_change,
       bool_and((e->>'committed_at')::timestamptz <= clock_timestamp()) AS committed_in_past
  FROM writer_snap
 WHERE regress_new(e) AND e->>'schema' = 'public' AND e->>'table' = 'writer_t'
 GROUP BY e->>'lsn'
 ORDER BY 1;

--
-- The whole stream (the events of the earlier tests too, and of earlier
-- runs on a server in use): seq is 1, 2, ... N without gap or repeat (from
-- its first line on: the first is seq 1 unless older files were removed),
-- commit LSNs never go back, no line has "sig", every line ends with
-- prev_hash and hash, prev_hash is the previous line's hash (64 zeros for
-- seq 1), and hash is the SHA-256 of prev_hash followed by the line's text
-- before its ,"prev_hash" key (its last one: the stream's keys are the
-- last 154 characters of a line).
--
WITH s AS (
  SELECT n, line, seq, lsn, prev_hash, hash, e,
         min(seq) OVER () AS first,
         lag(hash) OVER (ORDER BY n) AS prev,
         lag(lsn) OVER (ORDER BY n) AS prev_lsn
    FROM writer_snap)
SELECT count(*) > 0 AS has_events,
       bool_and(seq = n + first - 1) AS seq_consecutive,
       count(DISTINCT seq) = count(*) AS seq_unique,
       bool_and(seq IS NOT NULL AND (e IS NULL OR jsonb_typeof(e->'seq') = 'number')) AS seq_is_number,
       bool_and(prev_lsn IS NULL OR lsn >= prev_lsn) AS commit_order,
       bool_and(e IS NULL OR NOT e ? 'sig') AS no_sig,
       bool_and(right(line, 154) ~ '^,"prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$') AS tail_ok,
       bool_and(e IS NULL OR ((e->>'seq')::bigint = seq AND e->>'lsn' = lsn::text
                              AND e->>'prev_hash' = prev_hash AND e->>'hash' = hash)) AS tail_is_the_keys,
       bool_and(prev_hash = coalesce(prev, CASE WHEN first = 1 THEN repeat('0', 64) ELSE prev_hash END)) AS chain_linked,
       bool_and(hash = encode(sha256(convert_to(prev_hash || left(line, -154), 'UTF8')), 'hex')) AS hash_ok,
       count(DISTINCT hash) = count(*) AS hashes_unique
  FROM s;

-- Every file ends with a complete line (or is empty), and no line is empty.
SELECT count(*) >= 1 AS has_files,
       bool_and(c = '' OR right(c, 1) = E'\n') AS complete_lines,
       bool_and(position(E'\n\n' IN c) = 0 AND left(c, 1) <> E'\n') AS no_empty_lines
  FROM (SELECT pg_read_file(regress_stream_dir() || '/' || f) AS c
          FROM pg_ls_dir(regress_stream_dir()) f WHERE f LIKE 'audit-%.jsonl') d;

-- writer_status() agrees with the files: it has delivered every line added
-- since this test began, nothing is pending, nothing was rejected meanwhile,
-- and current_file is the last file.
SELECT s.events_delivered - :delivered_before =
         (SELECT count(*) FROM writer_snap WHERE seq > :seq_before) AS delivered_all,
       s.bytes_written > 0 AS wrote_bytes,
       s.pending_xacts AS pending_xacts,
       s.spilled_bytes >= 0 AS spilled_ok,
       s.forged_rejected - :forged_before AS forged_rejected,
       s.current_file ~ 'audit-\d{8}T\d{6}\.jsonl$' AS current_file_name,
       regexp_replace(s.current_file, '^.*/', '') =
         (SELECT max(f COLLATE "C") FROM pg_ls_dir(regress_stream_dir()) f WHERE f LIKE 'audit-%.jsonl') AS current_file_is_last,
       s.last_error IS NULL AS no_error
  FROM activity_audit.writer_status() s;

--
-- flush() also covers commits made with synchronous_commit = off (their
-- commit record may not be on disk yet when flush() is called).
--
SET synchronous_commit = off;
INSERT INTO writer_t VALUES (10, 'async');
SELECT activity_audit.flush() AS flushed;
RESET synchronous_commit;
SELECT rank, event_type, instance_id, instance_repr FROM writer_t_events() WHERE instance_id = '10';

-- flush() with no time to wait returns at once, with an answer (true or
-- false, depending on how far the writer is), not an error.
CREATE FUNCTION writer_timed_flush(timeout interval)
RETURNS TABLE(answered boolean, quick boolean) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  r boolean;
BEGIN
  r := activity_audit.flush(timeout);
  RETURN QUERY SELECT r IS NOT NULL, clock_timestamp() - t0 < interval '2s';
END
$$;
INSERT INTO writer_t VALUES (11, 'no wait');
SELECT * FROM writer_timed_flush('0');
-- nothing to wait for: true at once
SELECT activity_audit.flush() AS flushed;
SELECT * FROM writer_timed_flush('0');
SELECT activity_audit.flush('0') AS flushed;

-- The stream is still one chain after these.
WITH s AS (
  SELECT n, line, seq, prev_hash, hash, min(seq) OVER () AS first,
         lag(hash) OVER (ORDER BY n) AS prev FROM writer_stream())
SELECT bool_and(seq = n + first - 1) AS seq_consecutive,
       bool_and(prev_hash = coalesce(prev, CASE WHEN first = 1 THEN repeat('0', 64) ELSE prev_hash END)) AS chain_linked,
       bool_and(hash = encode(sha256(convert_to(prev_hash || left(line, -154), 'UTF8')), 'hex')) AS hash_ok
  FROM s;
SELECT rank, xact, event_type, instance_id FROM writer_t_events() WHERE rank > 7;

-- Drain the slot for the next test.
SELECT count(*) >= 0 AS drained FROM audit_raw();
DROP TABLE writer_t;
DROP FUNCTION writer_timed_flush(interval);
DROP FUNCTION writer_t_events();
DROP FUNCTION writer_stream();
DROP FUNCTION writer_lines();

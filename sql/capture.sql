--
-- capture: the event's shape (keys and their order, message, txid), which
-- work becomes an event (commit, rollback, savepoints, two-phase commit),
-- and activity_audit.capture() used in hand-written triggers.
--
SELECT count(*) AS leftover FROM audit_raw();
CREATE TABLE items (id bigint PRIMARY KEY, label text, price numeric);
SELECT activity_audit.track('items', model_name => 'Item');

-- keys appear in the contract's order; changes only in UPDATE events
INSERT INTO items VALUES (1, 'pen', 1.50);
UPDATE items SET price = 2 WHERE id = 1;
DELETE FROM items WHERE id = 1;
SELECT ordinality AS n, raw::jsonb->>'event_type' AS type,
       (SELECT string_agg(k, ',') FROM json_object_keys(raw::json) k) AS keys
  FROM audit_raw() WITH ORDINALITY raw;

-- the fixed and the varying fields, checked by shape
INSERT INTO items VALUES (2, 'ink', 3);
SELECT raw::jsonb->>'level' AS level, raw::jsonb->>'name' AS name,
       raw::jsonb->>'message' AS message,
       raw::jsonb->>'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS timestamp_rfc3339,
       (raw::jsonb->>'timestamp')::timestamptz BETWEEN now() - interval '1 minute' AND clock_timestamp() AS timestamp_now,
       raw::jsonb->'backend_pid' = to_jsonb(pg_backend_pid()) AS pid_ok,
       jsonb_typeof(raw::jsonb->'txid') AS txid_type
  FROM audit_raw() raw;

-- txid is the top-level transaction id, also from inside a subtransaction
BEGIN;
SAVEPOINT a;
INSERT INTO items VALUES (3, 'sub', 1);
RELEASE SAVEPOINT a;
SELECT txid_current() AS top_txid \gset
COMMIT;
SELECT (raw::jsonb->>'txid')::bigint = :top_txid AS txid_is_top_level FROM audit_raw() raw;

-- rolled-back work never appears: ROLLBACK, ROLLBACK TO SAVEPOINT, errors
BEGIN;
INSERT INTO items VALUES (10, 'rolled back', 0);
ROLLBACK;
BEGIN;
INSERT INTO items VALUES (11, 'kept', 0);
SAVEPOINT s;
INSERT INTO items VALUES (12, 'undone', 0);
UPDATE items SET label = 'undone too' WHERE id = 11;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
INSERT INTO items VALUES (13, 'kept in released savepoint', 0);
RELEASE SAVEPOINT s2;
COMMIT;
INSERT INTO items VALUES (14, 'ok', 0), (11, 'duplicate key fails the statement', 0);
SELECT * FROM audit_brief();

-- two-phase commit: ROLLBACK PREPARED never appears, COMMIT PREPARED does
BEGIN;
INSERT INTO items VALUES (20, 'prepared then rolled back', 0);
PREPARE TRANSACTION 'regress_aa_1';
BEGIN;
INSERT INTO items VALUES (21, 'prepared then committed', 0);
PREPARE TRANSACTION 'regress_aa_2';
ROLLBACK PREPARED 'regress_aa_1';
COMMIT PREPARED 'regress_aa_2';
SELECT * FROM audit_brief();

-- a statement touching many rows gives one event per row, in row order
INSERT INTO items SELECT g, 'bulk ' || g, g FROM generate_series(100, 104) g;
UPDATE items SET price = price * 2 WHERE id BETWEEN 100 AND 104;
SELECT event_type, string_agg(instance_id, ',' ORDER BY instance_id) AS ids, count(*)
  FROM audit_brief() GROUP BY event_type ORDER BY event_type;

-- excluding or redacting key columns keeps instance_id (it names the row)
SELECT activity_audit.track('items', exclude => '{id}', redact => '{label}');
INSERT INTO items VALUES (30, 'secret', 9);
SELECT * FROM audit_brief();
SELECT activity_audit.untrack('items');

-- capture() in hand-written triggers: no argument means defaults
CREATE TABLE hand (id int PRIMARY KEY, a text, b text);
CREATE TRIGGER audit_it AFTER INSERT OR UPDATE OR DELETE ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture();
INSERT INTO hand VALUES (1, 'x', 'y');
SELECT * FROM audit_brief();
SELECT table_name, model_name FROM activity_audit.tracked;
DROP TRIGGER audit_it ON hand;
-- the configuration object, as track() writes it
CREATE TRIGGER audit_it AFTER INSERT OR UPDATE OR DELETE ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('{"model": "Hand", "redact": ["b"], "exclude": ["a"]}');
UPDATE hand SET a = 'only excluded';
UPDATE hand SET b = 'z';
SELECT * FROM audit_brief();
DROP TRIGGER audit_it ON hand;

-- misuse fails the write with an error naming the trigger and table
CREATE TRIGGER audit_before BEFORE INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture();
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_before ON hand;
CREATE TRIGGER audit_stmt AFTER INSERT ON hand
  FOR EACH STATEMENT EXECUTE FUNCTION activity_audit.capture();
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_stmt ON hand;
CREATE TRIGGER audit_bad AFTER INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('{"redcat": ["b"]}');
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_bad ON hand;
CREATE TRIGGER audit_bad AFTER INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('not json');
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_bad ON hand;
CREATE TRIGGER audit_bad AFTER INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('{"exclude": "a"}');
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_bad ON hand;
CREATE TRIGGER audit_bad AFTER INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('{"redact": ["nope"]}');
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_bad ON hand;
CREATE TRIGGER audit_bad AFTER INSERT ON hand
  FOR EACH ROW EXECUTE FUNCTION activity_audit.capture('{}', '{}');
INSERT INTO hand VALUES (2, 'x', 'y');
DROP TRIGGER audit_bad ON hand;
SELECT activity_audit.capture();
-- none of the refused writes happened
SELECT count(*) AS hand_rows FROM hand;

-- a nested firing: building one event runs a cast to json that itself
-- writes to an audited table; both events come out whole
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE cast_log (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
SELECT activity_audit.track('cast_log');
CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO cast_log (note) VALUES ('cast ' || $1);
  RETURN json_build_object('mood', $1::text);
END $$;
CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
CREATE TABLE moods (id int PRIMARY KEY, m mood);
SELECT activity_audit.track('moods');
INSERT INTO moods VALUES (1, 'happy'), (2, 'sad');
SELECT * FROM audit_brief();
SELECT activity_audit.untrack('moods');
SELECT activity_audit.untrack('cast_log');
SELECT count(*) AS leftover FROM audit_raw();

-- escaping, exhaustively: each character from U+0001 to U+012C at each
-- offset of a 16-byte window (the escaper scans words of 8 bytes) comes
-- back unchanged, and every event is printable ASCII
CREATE TABLE esc (id int PRIMARY KEY, s text);
SELECT activity_audit.track('esc');
INSERT INTO esc
  SELECT c * 16 + o, repeat('a', o) || chr(c) || repeat('b', 17 - o)
    FROM generate_series(1, 300) c, generate_series(0, 15) o;
SELECT count(*) AS events,
       count(*) FILTER (WHERE raw::jsonb->'instance_repr'->>'s' = t.s) AS round_trips,
       count(*) FILTER (WHERE raw ~ '[^\x20-\x7e]') AS not_printable_ascii
  FROM audit_raw() raw JOIN esc t ON t.id = (raw::jsonb->>'instance_id')::int;
SELECT activity_audit.untrack('esc');
SELECT count(*) AS leftover FROM audit_raw();

-- a large value: the event grows past its buffer while changes copies the
-- new value's text out of instance_repr
CREATE TABLE big (id int PRIMARY KEY, body text, n int);
SELECT activity_audit.track('big');
INSERT INTO big VALUES (1, repeat('x', 10), 0);
UPDATE big SET body = repeat('y"', 200000), n = 1;
SELECT length(raw) > 400000 AS large,
       raw::jsonb->'changes'->'body'->'new' = to_jsonb(b.body) AS new_value_ok,
       raw::jsonb->'changes'->'n' AS n_change,
       raw::jsonb->'instance_repr' = to_jsonb(b) AS repr_ok
  FROM audit_raw() raw, big b
 WHERE raw::jsonb->>'event_type' = 'UPDATE';
SELECT activity_audit.untrack('big');

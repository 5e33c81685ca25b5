--
-- wal_format: audit.wal_format = full and compact carry the same events.
-- One workload (every event type, composite keys, escapes, context changes
-- within a transaction, savepoints, a nested firing) runs in each format;
-- the events put together from the WAL are equal, text for text, but for
-- the keys that differ from run to run (timestamp, backend_pid, txid).
--
SELECT count(*) >= 0 AS drained FROM audit_raw();
SHOW audit.wal_format;

CREATE TABLE wf_a (id int PRIMARY KEY, t text, j jsonb, f float8);
CREATE TABLE wf_b (k1 int, k2 text, v text, PRIMARY KEY (k1, k2));
CREATE TABLE wf_c (v text);
SELECT activity_audit.track('wf_a', model_name => 'app.A"quoted');
SELECT activity_audit.track('wf_b');
SELECT activity_audit.track('wf_c');
-- a nested firing: writing wf_a fires a trigger that writes wf_c
CREATE FUNCTION wf_nest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO wf_c VALUES ('nested ' || NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER wf_nest AFTER INSERT ON wf_a FOR EACH ROW EXECUTE FUNCTION wf_nest();

CREATE FUNCTION wf_workload() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('audit.user_id', 'u1', true);
  PERFORM set_config('audit.extra', '{"a":{},"sig":"1:2:3"}', true);
  INSERT INTO wf_a VALUES (1, E'quote " backslash \\ tab \t', '{"x":[1,{"y":"}"}]}', 1.5),
                          (2, NULL, NULL, NULL);
  UPDATE wf_a SET t = 'new', f = -0.0 WHERE id = 1;
  INSERT INTO wf_b VALUES (1, 'x"y', 'v'), (2, '', NULL);
  BEGIN
    INSERT INTO wf_b VALUES (3, 'rolled back', 'v');
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  PERFORM set_config('audit.user_id', 'u2', true);
  PERFORM set_config('audit.user_info', '{"name":"Ann"}', true);
  UPDATE wf_b SET v = 'w' WHERE k1 = 1;
  DELETE FROM wf_a WHERE id = 2;
  INSERT INTO wf_c VALUES (NULL);
  -- application_name, changing only at its end
  PERFORM set_config('application_name', repeat('a', 60) || '1', true);
  INSERT INTO wf_c VALUES ('app 1');
  PERFORM set_config('application_name', repeat('a', 60) || '2', true);
  INSERT INTO wf_c VALUES ('app 2');
END $$;

-- compact (the default)
BEGIN;
SELECT wf_workload();
COMMIT;
TRUNCATE wf_a, wf_b, wf_c;
CREATE TEMP TABLE wf_compact AS
  SELECT ordinality AS n, raw FROM audit_raw() WITH ORDINALITY raw;

-- full
ALTER SYSTEM SET audit.wal_format = 'full';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW audit.wal_format;
BEGIN;
SELECT wf_workload();
COMMIT;
TRUNCATE wf_a, wf_b, wf_c;
CREATE TEMP TABLE wf_full AS
  SELECT ordinality AS n, raw FROM audit_raw() WITH ORDINALITY raw;
ALTER SYSTEM RESET audit.wal_format;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW audit.wal_format;

-- the same events in the same order, text for text
CREATE FUNCTION wf_mask(t text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(t,
           '^\{"timestamp":"[^"]+"', '{"timestamp":T'),
           ',"backend_pid":[0-9]+,', ',"backend_pid":P,'),
           ',"txid":[0-9]+}$', ',"txid":X}')
$$;
SELECT count(*) AS events, count(*) FILTER (WHERE wf_mask(c.raw) = wf_mask(f.raw)) AS same_text
  FROM wf_compact c FULL JOIN wf_full f USING (n);
SELECT n, c.raw::jsonb->>'event_type' AS type, c.raw::jsonb->>'model' AS model,
       c.raw::jsonb->>'message' AS message, c.raw::jsonb->>'user_id' AS user_id,
       right(c.raw::jsonb->>'application_name', 3) AS app_end
  FROM wf_compact c ORDER BY n;
-- any difference, shown
SELECT n, wf_mask(c.raw) AS compact, wf_mask(f.raw) AS full
  FROM wf_compact c FULL JOIN wf_full f USING (n)
 WHERE wf_mask(c.raw) IS DISTINCT FROM wf_mask(f.raw);

DROP TABLE wf_a, wf_b, wf_c;
DROP FUNCTION wf_workload(), wf_nest(), wf_mask(text);
SELECT count(*) AS leftover FROM audit_raw();

--
-- suppressed: a transaction that writes to tracked tables with
-- audit.enabled = off leaves one audit.config AUDIT_SUPPRESSED event per
-- table instead of silence (SPEC section 9).
--
SELECT count(*) >= 0 AS drained FROM audit_raw();
CREATE FUNCTION sup_events() RETURNS TABLE(name text, event_type text, model text, tbl text,
                                           instance_id text, repr jsonb, who boolean)
LANGUAGE sql AS $$
  SELECT e->>'name', e->>'event_type', e->>'model', (e->>'schema') || '.' || (e->>'table'),
         e->>'instance_id', e->'instance_repr', e->>'db_user' = current_user
    FROM audit_events() e
$$;
CREATE TABLE sup_a (id int PRIMARY KEY);
CREATE TABLE sup_b (id int PRIMARY KEY);
CREATE TABLE sup_plain (id int PRIMARY KEY);     -- never tracked
SELECT activity_audit.track('sup_a', 'Alpha');
-- a trigger written by hand, with a configuration the trigger would refuse
CREATE TRIGGER hand AFTER INSERT ON sup_b FOR EACH ROW
  EXECUTE FUNCTION activity_audit.capture('{"model": "Beta", "redcat": ["x"]}');
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- one event per transaction and table, whatever the number of rows and
-- statements; none for a rolled-back savepoint's (the next write writes it
-- again); none for an untracked table; row events again once it is on
BEGIN;
SET LOCAL audit.enabled = off;
INSERT INTO sup_a SELECT generate_series(1, 5);
UPDATE sup_a SET id = id + 10;
DELETE FROM sup_a WHERE id = 11;
SAVEPOINT s;
INSERT INTO sup_b VALUES (1);
ROLLBACK TO s;
INSERT INTO sup_b VALUES (2);
INSERT INTO sup_b VALUES (3);
INSERT INTO sup_plain VALUES (1);
TRUNCATE sup_a;
COMMIT;
INSERT INTO sup_a VALUES (100);
SELECT * FROM sup_events();

-- a rolled-back transaction leaves nothing, like its changes
BEGIN;
SET LOCAL audit.enabled = off;
INSERT INTO sup_a VALUES (200);
ROLLBACK;
SELECT count(*) AS nothing FROM sup_events();

-- a released savepoint's event stays; the next transaction writes its own
BEGIN;
SET LOCAL audit.enabled = off;
SAVEPOINT s1;
INSERT INTO sup_a VALUES (300);
RELEASE s1;
INSERT INTO sup_a VALUES (301);
COMMIT;
SET audit.enabled = off;
INSERT INTO sup_a VALUES (302);
INSERT INTO sup_a VALUES (303);
RESET audit.enabled;
SELECT event_type, model, count(*) FROM sup_events() GROUP BY 1, 2 ORDER BY 1, 2;

DROP TABLE sup_a, sup_b, sup_plain;
DROP FUNCTION sup_events();
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- bench/setup.sql — the three tables the benchmark compares (run once per cluster by run.sh).
--
--   t_plain    no auditing                        (the baseline)
--   t_audit    activity_audit.track('t_audit')    (run.sh calls track after this file)
--   t_plpgsql  the PL/pgSQL audit trigger users write today: one audit_log row per change
--
-- Autovacuum is off on these tables only, so a background vacuum of the previous run's
-- 200,000 rows cannot land inside a later measurement; run.sh truncates between runs.

SET client_min_messages = warning;

CREATE TABLE t_plain (
	id bigint PRIMARY KEY,
	a  int,
	b  bigint,
	c  text,
	d  numeric,
	e  timestamptz,
	f  boolean,
	g  text
) WITH (autovacuum_enabled = false);

CREATE TABLE t_audit (
	id bigint PRIMARY KEY,
	a  int,
	b  bigint,
	c  text,
	d  numeric,
	e  timestamptz,
	f  boolean,
	g  text
) WITH (autovacuum_enabled = false);

CREATE TABLE t_plpgsql (
	id bigint PRIMARY KEY,
	a  int,
	b  bigint,
	c  text,
	d  numeric,
	e  timestamptz,
	f  boolean,
	g  text
) WITH (autovacuum_enabled = false);

CREATE TABLE audit_log (
	id         bigserial PRIMARY KEY,
	ts         timestamptz DEFAULT now(),
	table_name text,
	op         text,
	row_data   jsonb,
	old_data   jsonb
) WITH (autovacuum_enabled = false);

CREATE FUNCTION audit_log_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO audit_log (table_name, op, row_data)
		VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
	ELSIF TG_OP = 'UPDATE' THEN
		INSERT INTO audit_log (table_name, op, row_data, old_data)
		VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW), to_jsonb(OLD));
	ELSE
		INSERT INTO audit_log (table_name, op, row_data)
		VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(OLD));
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER t_plpgsql_audit
	AFTER INSERT OR UPDATE OR DELETE ON t_plpgsql
	FOR EACH ROW EXECUTE FUNCTION audit_log_trigger();

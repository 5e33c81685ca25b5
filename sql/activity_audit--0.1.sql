/* activity_audit--0.1.sql: objects of the activity_audit extension */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION activity_audit" to load this file. \quit

-- Refuse to install on a server that did not preload the library: auditing
-- would fail closed on every write anyway, so say so now.
CREATE FUNCTION activity_audit._check_preload()
RETURNS void
AS 'MODULE_PATHNAME', 'activity_audit_check_preload'
LANGUAGE C STRICT;

SELECT activity_audit._check_preload();

-- The audit trigger.  Its optional single argument is the configuration as
-- a JSON object: {"model": ..., "exclude": [...], "redact": [...],
-- "log_noop_updates": bool}.
CREATE FUNCTION activity_audit.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_audit_capture'
LANGUAGE C;

-- The configuration stored in a capture trigger's arguments.
CREATE FUNCTION activity_audit._trigger_config(tgargs bytea, tgnargs int2)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN tgnargs = 0 THEN '{}'::jsonb
         ELSE convert_from(substring(tgargs FROM 1 FOR position('\x00'::bytea IN tgargs) - 1),
                           current_setting('server_encoding'))::jsonb
         END
$$;

-- Drop one of our triggers if the table has it (quietly, unlike
-- DROP TRIGGER IF EXISTS, which notices every time it skips).
CREATE FUNCTION activity_audit._drop_trigger(target regclass, name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = target AND t.tgname = name) THEN
    EXECUTE format('DROP TRIGGER %I ON %s', name, target);
  END IF;
END
$$;

-- Add the TRUNCATE trigger to every leaf partition below a tracked
-- partitioned table, or below a partition of one, that lacks one.  Row
-- triggers are cloned to partitions by PostgreSQL itself; statement
-- triggers are not.  The configuration is that of parent's row trigger,
-- its own or the clone of its tracked ancestor's, so a leaf's two triggers
-- always agree.  track() calls it, and the library's ProcessUtility hook
-- (src/capture/utility_hook.c) after CREATE TABLE ... PARTITION OF parent and
-- ATTACH PARTITION to parent, as the extension's owner: a role running
-- that DDL on its own table has no USAGE on this schema.
CREATE FUNCTION activity_audit._sync_partitions(parent regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg jsonb;
  leaf regclass;
BEGIN
  SELECT activity_audit._trigger_config(t.tgargs, t.tgnargs) INTO cfg
    FROM pg_trigger t
   WHERE t.tgrelid = parent AND t.tgname = 'activity_audit_capture';
  IF cfg IS NULL THEN
    RETURN;
  END IF;
  FOR leaf IN
    SELECT p.relid FROM pg_partition_tree(parent) p
     WHERE p.isleaf AND p.relid <> parent
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = p.relid AND t.tgname = 'activity_audit_truncate')
  LOOP
    EXECUTE format('CREATE TRIGGER activity_audit_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION activity_audit.capture(%L)',
                   leaf, cfg::text);
  END LOOP;
END
$$;

-- The tables rels give up configurations of their own, as untrack() would
-- take them, because a tracked table's row trigger is about to be cloned
-- into them (ATTACH PARTITION under it, or track() of their root):
-- PostgreSQL refuses to clone a trigger over one of the same name, and two
-- capture triggers would audit every change twice.  Own capture triggers
-- only: dropping one takes its clones below along.  Their TRUNCATE triggers
-- go too; _sync_partitions() then gives every leaf the new configuration's.
-- Runs with the caller's rights, like _drop_trigger().
CREATE FUNCTION activity_audit._release_own_config(rels regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rel regclass;
BEGIN
  FOR rel IN
    SELECT t.tgrelid FROM pg_trigger t
     WHERE t.tgrelid = ANY (rels)
       AND t.tgname = 'activity_audit_capture' AND t.tgparentid = 0
  LOOP
    PERFORM activity_audit._drop_trigger(rel, 'activity_audit_capture');
  END LOOP;
  FOREACH rel IN ARRAY rels LOOP
    PERFORM activity_audit._drop_trigger(rel, 'activity_audit_truncate');
  END LOOP;
END
$$;

-- Before ATTACH PARTITION part to parent, if parent is audited (its capture
-- trigger, own or cloned, is about to be cloned into part's tree): the
-- tables of that tree give up configurations of their own
-- (_release_own_config).  Called only by the ProcessUtility hook, as the extension's
-- owner, when the role running the ATTACH owns both tables and holds the
-- locks ATTACH takes; PUBLIC may not.
CREATE FUNCTION activity_audit._partition_attaching(parent regclass, part regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                  WHERE t.tgrelid = parent AND t.tgname = 'activity_audit_capture') THEN
    RETURN;
  END IF;
  -- pg_partition_tree() of a table that is not yet a partition is empty,
  -- unless it is partitioned.
  PERFORM activity_audit._release_own_config(
    ARRAY(SELECT part UNION SELECT p.relid FROM pg_partition_tree(part) p));
END
$$;

-- After DETACH PARTITION part: PostgreSQL has dropped the capture triggers
-- it had cloned into part's tree; drop the TRUNCATE triggers that were
-- there only because the tree was a partition.  A table of the tree that
-- still has a capture trigger of its own keeps its TRUNCATE trigger.
-- Called only by the ProcessUtility hook, as the extension's owner, when
-- the role running the DETACH owns the partitioned table; PUBLIC may not.
CREATE FUNCTION activity_audit._partition_detached(part regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rel regclass;
BEGIN
  -- pg_partition_tree() of a table that is no longer a partition is empty
  FOR rel IN
    SELECT t.tgrelid FROM pg_trigger t
     WHERE t.tgrelid IN (SELECT part UNION SELECT p.relid FROM pg_partition_tree(part) p)
       AND t.tgname = 'activity_audit_truncate'
       AND NOT EXISTS (SELECT 1 FROM pg_trigger r
                        WHERE r.tgrelid = t.tgrelid AND r.tgname = 'activity_audit_capture')
  LOOP
    EXECUTE format('DROP TRIGGER activity_audit_truncate ON %s', rel);
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION activity_audit._partition_attaching(regclass, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_audit._partition_detached(regclass) FROM PUBLIC;

-- Start (or re-configure) auditing of a table.
CREATE FUNCTION activity_audit.track(target regclass,
                                     model_name text DEFAULT NULL,
                                     exclude text[] DEFAULT '{}',
                                     redact text[] DEFAULT '{}',
                                     log_noop_updates boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  kind "char";
  col text;
  cfg jsonb;
BEGIN
  PERFORM activity_audit._check_preload();
  IF target IS NULL THEN
    RAISE EXCEPTION 'activity_audit.track: target table must not be NULL'
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass the table to audit, for example activity_audit.track(''public.patients'').';
  END IF;
  SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = target;
  IF kind IS NULL THEN
    RAISE EXCEPTION 'activity_audit.track: relation with OID % does not exist', target::oid
      USING ERRCODE = 'undefined_table';
  END IF;
  IF kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'activity_audit.track: "%" is not a table', target
      USING ERRCODE = 'wrong_object_type',
            DETAIL = format('Its relkind is %L; only ordinary and partitioned tables can be audited.', kind),
            HINT = 'Track the table the view or index is built on.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_trigger t
              WHERE t.tgrelid = target AND t.tgname = 'activity_audit_capture'
                AND t.tgparentid <> 0) THEN
    RAISE EXCEPTION 'activity_audit.track: "%" is a partition of a tracked table', target
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Its configuration comes from the partitioned table; re-run activity_audit.track() on that table instead.';
  END IF;
  IF model_name = '' THEN
    RAISE EXCEPTION 'activity_audit.track: model_name must not be empty'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass NULL to use the table''s name.';
  END IF;
  exclude := coalesce(exclude, '{}');
  redact := coalesce(redact, '{}');
  IF array_position(exclude, NULL) IS NOT NULL OR array_position(redact, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'activity_audit.track: exclude and redact must not contain NULL'
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'List column names only; pass an empty array for none.';
  END IF;
  FOREACH col IN ARRAY exclude || redact LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = target AND a.attname = col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'activity_audit.track: column "%" of table "%" does not exist', col, target
        USING ERRCODE = 'undefined_column',
              DETAIL = format('It is listed in %s.', CASE WHEN col = ANY (exclude) THEN 'exclude' ELSE 'redact' END),
              HINT = 'Column names are case-sensitive and must be spelled as in the table.';
    END IF;
  END LOOP;
  FOREACH col IN ARRAY exclude LOOP
    IF col = ANY (redact) THEN
      RAISE EXCEPTION 'activity_audit.track: column "%" is listed in both exclude and redact', col
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'An excluded column is left out entirely; list it in only one of them.';
    END IF;
  END LOOP;

  cfg := jsonb_build_object('model', coalesce(model_name, (SELECT c.relname FROM pg_class c WHERE c.oid = target)),
                            'exclude', to_jsonb(exclude),
                            'redact', to_jsonb(redact),
                            'log_noop_updates', coalesce(log_noop_updates, false));

  PERFORM activity_audit._drop_trigger(target, 'activity_audit_capture');
  PERFORM activity_audit._drop_trigger(target, 'activity_audit_truncate');
  IF kind = 'p' THEN
    -- the tables below give up configurations of their own; all in this
    -- transaction, so a failure below leaves them as they were
    PERFORM activity_audit._release_own_config(
      ARRAY(SELECT p.relid FROM pg_partition_tree(target) p WHERE p.relid <> target));
  END IF;
  EXECUTE format('CREATE TRIGGER activity_audit_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
                 'FOR EACH ROW EXECUTE FUNCTION activity_audit.capture(%L)', target, cfg::text);
  EXECUTE format('CREATE TRIGGER activity_audit_truncate AFTER TRUNCATE ON %s '
                 'FOR EACH STATEMENT EXECUTE FUNCTION activity_audit.capture(%L)', target, cfg::text);
  IF kind = 'p' THEN
    PERFORM activity_audit._sync_partitions(target);
  END IF;
END
$$;

-- Stop auditing a table.
CREATE FUNCTION activity_audit.untrack(target regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  leaf regclass;
BEGIN
  IF target IS NULL THEN
    RAISE EXCEPTION 'activity_audit.untrack: target table must not be NULL'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_trigger t
              WHERE t.tgrelid = target AND t.tgname = 'activity_audit_capture'
                AND t.tgparentid <> 0) THEN
    RAISE EXCEPTION 'activity_audit.untrack: "%" is a partition of a tracked table', target
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Untrack the partitioned table instead.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                  WHERE t.tgrelid = target AND t.tgname = 'activity_audit_capture') THEN
    RAISE NOTICE 'table "%" is not tracked, skipping', target;
    RETURN;
  END IF;
  FOR leaf IN
    SELECT p.relid FROM pg_partition_tree(target) p
     WHERE p.isleaf AND p.relid <> target
  LOOP
    PERFORM activity_audit._drop_trigger(leaf, 'activity_audit_truncate');
  END LOOP;
  PERFORM activity_audit._drop_trigger(target, 'activity_audit_capture');
  PERFORM activity_audit._drop_trigger(target, 'activity_audit_truncate');
END
$$;

-- What is audited now: every table with a capture row trigger of its own
-- (partitions inherit theirs and are not listed separately).
CREATE VIEW activity_audit.tracked AS
SELECT t.tgrelid::regclass AS table_name,
       cfg->>'model' AS model_name,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(cfg->'exclude', '[]'))) AS exclude,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(cfg->'redact', '[]'))) AS redact,
       coalesce((cfg->>'log_noop_updates')::boolean, false) AS log_noop_updates
  FROM pg_catalog.pg_trigger t,
       LATERAL activity_audit._trigger_config(t.tgargs, t.tgnargs) AS cfg
 WHERE t.tgfoid = 'activity_audit.capture()'::regprocedure
   AND t.tgparentid = 0
   AND (t.tgtype & 1) = 1;

-- Set the session context in one call.
CREATE FUNCTION activity_audit.set_context(user_id text,
                                           user_info jsonb DEFAULT NULL,
                                           request_id text DEFAULT NULL,
                                           extra jsonb DEFAULT NULL,
                                           is_local boolean DEFAULT true)
RETURNS void
LANGUAGE sql
AS $$
  SELECT pg_catalog.set_config('audit.user_id', coalesce(user_id, ''), coalesce(is_local, true)),
         pg_catalog.set_config('audit.user_info', coalesce(user_info::text, ''), coalesce(is_local, true)),
         pg_catalog.set_config('audit.request_id', coalesce(request_id, ''), coalesce(is_local, true)),
         pg_catalog.set_config('audit.extra', coalesce(extra::text, ''), coalesce(is_local, true));
$$;

-- Wait until every event committed before the call is delivered.
CREATE FUNCTION activity_audit.flush(timeout interval DEFAULT '10s')
RETURNS boolean
AS 'MODULE_PATHNAME', 'activity_audit_flush'
LANGUAGE C STRICT VOLATILE;

-- The writer's health and lag.
CREATE FUNCTION activity_audit.writer_status()
RETURNS TABLE(pid int, read_lsn pg_lsn, delivered_lsn pg_lsn, lag_bytes bigint,
              events_delivered bigint, bytes_written bigint, current_file text,
              pending_xacts int, spilled_bytes bigint, forged_rejected bigint,
              last_error text)
AS 'MODULE_PATHNAME', 'activity_audit_writer_status'
LANGUAGE C STRICT VOLATILE;

-- Reading and proving the stream (SPEC section 6).  The file sink's files
-- are read by the library itself, so an auditor role needs only EXECUTE on
-- these and USAGE on the schema; PUBLIC has neither:
--   GRANT USAGE ON SCHEMA activity_audit TO auditor;
--   GRANT EXECUTE ON FUNCTION activity_audit.log_stream(timestamptz, timestamptz),
--                             activity_audit.history(regclass, text),
--                             activity_audit.verify() TO auditor;

-- The file sink's events in seq order, optionally with "timestamp" in
-- [since, until).
CREATE FUNCTION activity_audit.log_stream(since timestamptz DEFAULT NULL,
                                          until timestamptz DEFAULT NULL)
RETURNS TABLE(seq bigint, ts timestamptz, event_type text, schema_name text,
              table_name text, model text, instance_id text, user_id text,
              request_id text, event jsonb)
AS 'MODULE_PATHNAME', 'activity_audit_log_stream'
LANGUAGE C VOLATILE ROWS 1000;

-- Every event of one row of one table of the current database, in order.
CREATE FUNCTION activity_audit.history(target regclass, instance_id text)
RETURNS TABLE(seq bigint, ts timestamptz, event_type text, schema_name text,
              table_name text, model text, instance_id text, user_id text,
              request_id text, event jsonb)
AS 'MODULE_PATHNAME', 'activity_audit_history'
LANGUAGE C STRICT VOLATILE ROWS 10;

-- Recompute the hash chain over all files: one row.
CREATE FUNCTION activity_audit.verify()
RETURNS TABLE(ok boolean, events bigint, first_bad_seq bigint, detail text)
AS 'MODULE_PATHNAME', 'activity_audit_verify'
LANGUAGE C VOLATILE ROWS 1;

REVOKE ALL ON FUNCTION activity_audit.log_stream(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_audit.history(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_audit.verify() FROM PUBLIC;

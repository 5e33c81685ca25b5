-- test/installcheck_server.sql: what "make installcheck" needs of the
-- running server it tests against, checked before the suites run so that
-- a missing setting is one clear error instead of a page of diffs.
-- (test/regress.conf has the settings; "make installcheck TEMP_INSTANCE=1"
-- makes throwaway servers with them instead.)
DO $$
DECLARE
  missing text[] := '{}';
  preload text[] := string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',');
  free_slots int := current_setting('max_replication_slots')::int -
                    (SELECT count(*) FROM pg_replication_slots);
BEGIN
  IF NOT 'activity_audit' = ANY (preload) THEN
    missing := missing || format('shared_preload_libraries must include activity_audit (it is %L)',
                                 current_setting('shared_preload_libraries'));
  END IF;
  IF current_setting('wal_level') <> 'logical' THEN
    missing := missing || format('wal_level must be logical (it is %s)', current_setting('wal_level'));
  END IF;
  IF current_setting('max_prepared_transactions')::int < 2 THEN
    missing := missing || format('max_prepared_transactions must be 2 or more (it is %s)',
                                 current_setting('max_prepared_transactions'));
  END IF;
  IF free_slots < 2 THEN
    missing := missing || format('2 free replication slots are needed (max_replication_slots leaves %s)',
                                 free_slots);
  END IF;
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    missing := missing || format('the tests must connect as a superuser (%I is not)', current_user);
  END IF;
  IF current_setting('audit.log_filename', true) IS DISTINCT FROM 'audit-%Y%m%dT%H%M%S.jsonl' THEN
    missing := missing || format('audit.log_filename must be the default (it is %L)',
                                 current_setting('audit.log_filename', true));
  END IF;
  IF cardinality(missing) > 0 THEN
    RAISE EXCEPTION 'make installcheck cannot run against this server: %', array_to_string(missing, '; ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Use the settings of test/regress.conf (a restart is needed for shared_preload_libraries, wal_level and max_prepared_transactions), or run "make installcheck TEMP_INSTANCE=1" to test on throwaway servers.';
  END IF;
END
$$;

--
-- setup: the extension, a logical slot that sees the audit messages, and
-- helpers the other tests use to read events back.
--
CREATE EXTENSION activity_audit;
SELECT 'init' FROM pg_create_logical_replication_slot('regress_slot', 'test_decoding');

-- Raw event texts written since the last call, in WAL order, committed only.
CREATE FUNCTION audit_raw() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT substring(data FROM '^message: transactional: 1 prefix: activity_audit, sz: [0-9]+ content:(.*)$')
    FROM pg_logical_slot_get_changes('regress_slot', NULL, NULL, 'include-xids', '0')
   WHERE data LIKE 'message: transactional: 1 prefix: activity_audit, %'
$$;

-- The same events as jsonb, without the keys that vary from run to run
-- (sig, the signature, depends on the server's event key).
CREATE FUNCTION audit_events() RETURNS SETOF jsonb LANGUAGE sql AS $$
  SELECT e::jsonb - '{timestamp,backend_pid,txid,sig}'::text[] FROM audit_raw() e
$$;

-- One line per event, for compact expected output.
CREATE FUNCTION audit_brief() RETURNS TABLE(event_type text, model text, instance_id text, instance_repr jsonb, changes jsonb) LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', e->>'instance_id', e->'instance_repr', e->'changes' FROM audit_events() e
$$;

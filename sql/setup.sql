--
-- setup: the extension, a logical slot that sees the audit messages, and
-- helpers the other tests use to read events back.
--
CREATE EXTENSION activity_audit;
SELECT 'init' FROM pg_create_logical_replication_slot('regress_slot', 'test_decoding');

-- The members of a JSON object's text, key and value each as written (json's
-- functions would decode the keys, and refuse \u0000 anywhere in the text).
CREATE FUNCTION audit_members(obj text) RETURNS TABLE(o int, k text, v text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  b bytea := convert_to(obj, 'SQL_ASCII');
  n int := length(b);
  i int := 1;            -- 0-based position, just after '{' or ','
  depth int;
  in_str boolean;
  c int;
  start int;
  colon int;
BEGIN
  o := 0;
  WHILE i < n - 1 LOOP
    start := i; colon := NULL; depth := 0; in_str := false;
    WHILE i < n - 1 LOOP
      c := get_byte(b, i);
      IF in_str THEN
        IF c = 92 THEN i := i + 1; ELSIF c = 34 THEN in_str := false; END IF;
      ELSIF c = 34 THEN in_str := true;
      ELSIF c = 58 AND depth = 0 AND colon IS NULL THEN colon := i;
      ELSIF c IN (123, 91) THEN depth := depth + 1;
      ELSIF c IN (125, 93) THEN depth := depth - 1;
      ELSIF c = 44 AND depth = 0 THEN EXIT;
      END IF;
      i := i + 1;
    END LOOP;
    o := o + 1;
    k := convert_from(substring(b FROM start + 1 FOR colon - start), 'SQL_ASCII');
    v := convert_from(substring(b FROM colon + 2 FOR i - colon - 1), 'SQL_ASCII');
    RETURN NEXT;
    i := i + 1;
  END LOOP;
END $$;

-- Raw event texts written since the last call, in WAL order, committed only,
-- put together from either WAL format (README, "The WAL messages") exactly
-- as the writer does: a full-format message is the event with a "sig" key at
-- the end; a compact row is joined with the header it names, and an
-- UPDATE's old values with the new ones from the row.  json (not jsonb)
-- keeps each element's text as written.
CREATE FUNCTION audit_raw() RETURNS SETOF text LANGUAGE sql AS $$
  WITH msg AS (
    SELECT n, c, regexp_match(c, '"([0-9]+):([0-9]+):[0-9a-f]{16}"[]}]$') AS sig
      FROM (SELECT n, substring(data FROM '^message: transactional: 1 prefix: activity_audit, sz: [0-9]+ content:(.*)$') AS c
              FROM pg_logical_slot_get_changes('regress_slot', NULL, NULL, 'include-xids', '0')
                   WITH ORDINALITY x(lsn, xid, data, n)
             WHERE data LIKE 'message: transactional: 1 prefix: activity_audit, %') s
  ), hdr AS (
    SELECT sig[1] AS txid, sig[2] AS num, substr(h, 2, length(h) - 2) AS head,
           substr(t, 2, length(t) - 2) AS tail
      FROM (SELECT sig, (c::json->'head')::text AS h, (c::json->'tail')::text AS t
              FROM msg WHERE c LIKE '{"head":{%') m
  ), hdr_parts AS (
    SELECT txid, num, tail,
           substr(head, 1, strpos(head, ',"request_id":') - 1) AS level_name,
           substr(head, strpos(head, ',"request_id":') + 1) AS request,
           substr(head, strpos(head, ',"model":"') + 10,
                  length(head) - strpos(head, ',"model":"') - 10) AS model
      FROM hdr
  ), row_msg AS (
    SELECT n, sig[1] AS txid,
           (SELECT array_agg(v::text ORDER BY i) FROM json_array_elements(c::json) WITH ORDINALITY a(v, i)) AS e
      FROM msg WHERE c LIKE '[%'
  )
  SELECT ev FROM (
    SELECT n, regexp_replace(c, ',"sig":"[0-9]+:[0-9]+:[0-9a-f]{16}"}$', '}') AS ev
      FROM msg WHERE c LIKE '{"timestamp":%'
    UNION ALL
    SELECT r.n,
           '{"timestamp":' || e[1] || ',' || h.level_name || ',"message":"' ||
           (e[2]::json #>> '{}') || ' event by ' || h.model ||
           CASE WHEN e[3] <> 'null' THEN ' (id: ' || substr(e[3], 2, length(e[3]) - 2) || ')' ELSE '' END ||
           '",' || h.request || ',"event_type":' || e[2] || ',"instance_id":' || e[3] ||
           ',"instance_repr":' || e[4] ||
           CASE WHEN cardinality(e) = 7 THEN ',"changes":{' ||
             coalesce((SELECT string_agg(c.k || ':{"old":' || c.v || ',"new":' || r.v || '}', ',' ORDER BY c.o)
                         FROM audit_members(e[5]) c JOIN audit_members(e[4]) r USING (k)), '') || '}'
           ELSE '' END ||
           ',' || h.tail || '}'
      FROM row_msg r
      LEFT JOIN hdr_parts h ON h.txid = r.txid AND h.num = r.e[cardinality(r.e) - 1]
  ) events ORDER BY n
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

-- The stream may hold events from before this run (make installcheck on a
-- server in use, or run twice): the tests look at the events delivered
-- after this point, and at the whole stream only as one chain.
SELECT activity_audit.flush('60s') AS flushed;
CREATE TABLE regress_stream_base AS
  SELECT coalesce(max(seq), 0) AS seq FROM activity_audit.log_stream();
GRANT SELECT ON regress_stream_base TO PUBLIC;
-- Whether a delivered event (log_stream()'s event, or a parsed line) is
-- this run's.
CREATE FUNCTION regress_new(seq bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT seq > (SELECT b.seq FROM regress_stream_base b)
$$;
CREATE FUNCTION regress_new(e jsonb) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT regress_new((e->>'seq')::bigint)
$$;
-- The stream's keys of a delivered line, read from its fixed-form tail
-- without parsing the line (lines of earlier tests and runs may hold what
-- jsonb cannot, \u0000); no row if the line does not end in that form.
-- (A set-returning SQL function, so that it is inlined; patterns that
-- PostgreSQL's regex engine matches fast: no [^"]+, no {64}.)
CREATE FUNCTION regress_line_keys(line text)
RETURNS TABLE(seq bigint, lsn pg_lsn, committed_at text, prev_hash text, hash text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT m[1]::bigint, m[2]::pg_lsn, m[3], substr(t, 15, 64), substr(t, 89, 64)
    FROM (SELECT right(line, 154) AS t,
                 regexp_match(left(right(line, 300), -154),
                              ',"seq":([0-9]+),"lsn":"([0-9A-F]+/[0-9A-F]+)","committed_at":"([^"]{27})"$') AS m
          OFFSET 0) x  -- (each match once, not once per use)
   WHERE t ~ '^,"prev_hash":"[0-9a-f]+","hash":"[0-9a-f]+"}$' AND m IS NOT NULL
$$;
-- The file sink's directory, as pg_ls_dir() and pg_read_file() take it.
CREATE FUNCTION regress_stream_dir() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT current_setting('audit.log_directory')
$$;

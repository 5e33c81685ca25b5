--
-- values: column values in instance_repr and changes are exactly what
-- to_jsonb() gives for the column (SPEC section 4), for every family of
-- built-in types, under different session formatting settings; and every
-- event is one line of pure-ASCII, valid JSON.
--
-- For each type family there is an untracked source table src_<family>
-- holding the test rows and a tracked copy v_<family> with the same columns.
-- The events are collected into vals_ev and compared with to_jsonb() of the
-- rows they describe: as jsonb (same) and as text (same_text).  same_text
-- compares the event's own text, not its jsonb parse (which would turn
-- 1e+300 and -0 into the numeric that to_jsonb prints), so it catches
-- numbers written in another form (1e+300, -0, 1.50 vs 1.5).
--

-- start from an empty slot whatever earlier tests left
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- the regression database is UTF8 (pg_regress takes the environment's locale)
SHOW server_encoding;

-- money output depends on lc_monetary; pin it
SET lc_monetary = 'C';

-- Events collected so far, tagged by test phase, and the transaction of
-- each phase (its txid and the window its events' timestamps must fall in).
CREATE TABLE vals_ev (n serial PRIMARY KEY, phase text, raw text, event jsonb);
CREATE TABLE vals_xact (phase text PRIMARY KEY, xid bigint, started timestamptz, finished timestamptz);
CREATE FUNCTION vals_grab(p text) RETURNS bigint LANGUAGE sql AS $$
  WITH ins AS (INSERT INTO vals_ev (phase, raw, event)
               SELECT p, r, r::jsonb FROM audit_raw() r RETURNING 1)
  SELECT count(*) FROM ins
$$;
CREATE TABLE vals_fam (ord int PRIMARY KEY, fam text);

-- JSON text in one canonical form, to compare an event's text with
-- to_jsonb()'s: numbers exactly as written, strings re-encoded, object
-- keys sorted and, like jsonb, the last of duplicate keys kept, no spaces.
CREATE FUNCTION vals_canon(j json) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE json_typeof(j)
    WHEN 'object' THEN
      '{' || coalesce((SELECT string_agg(to_json(o.key)::text || ':' || vals_canon(o.value), ','
                                         ORDER BY o.key COLLATE "C")
                         FROM (SELECT DISTINCT ON (key) key, value
                                 FROM json_each(j) WITH ORDINALITY x(key, value, n)
                                ORDER BY key, n DESC) o), '') || '}'
    WHEN 'array' THEN
      '[' || coalesce((SELECT string_agg(vals_canon(a.value), ',' ORDER BY a.n)
                         FROM json_array_elements(j) WITH ORDINALITY a(value, n)), '') || ']'
    WHEN 'string' THEN to_json(j #>> '{}')::text
    ELSE j::text
  END
$$;

--
-- The type families.
--

-- integers at their limits
CREATE TABLE src_int (id int PRIMARY KEY, i2 int2, i4 int4, i8 int8);
INSERT INTO src_int VALUES
  (1, -32768, -2147483648, -9223372036854775808),
  (2, 32767, 2147483647, 9223372036854775807),
  (3, 0, 0, 0),
  (4, NULL, NULL, NULL);

-- numeric and floats: scale is kept (1.50), huge and tiny values, and
-- NaN/Infinity, which are not JSON numbers and become strings
CREATE TABLE src_num (id int PRIMARY KEY, n numeric, n2 numeric(10,3), f4 float4, f8 float8);
INSERT INTO src_num VALUES
  (1, 1.50, 1.5, 1.1, 1.1),
  (2, 123456789012345678901234567890.123456789012345678901234567890, -0.001, 3.4e38, 1e300),
  (3, 'NaN', 'NaN', 'NaN', 'NaN'),
  (4, 'Infinity', NULL, 'Infinity', 'Infinity'),
  (5, '-Infinity', NULL, '-Infinity', '-Infinity'),
  (6, 0.000000000000000000001, 0, '-0', '-0'),
  (7, -1e100, 1234567.000, 16777217, 0.1::float8 + 0.2),
  (8, 0, -0.5, 1.17549435e-38, 5e-324),
  (9, NULL, NULL, NULL, NULL);

-- floats at their extremes, which their output functions write in exponent
-- form: to_jsonb reads that text as a numeric and prints every digit
-- (1e+308 as 309 digits, denormals with all their leading zeros), and -0
-- as 0; plain values keep their text.  Also in arrays, in a composite and
-- through a domain.  Rows 6 and 7 differ only in the sign of their zeros.
CREATE TYPE vals_fpair AS (f4 float4, f8 float8, fa float8[]);
CREATE DOMAIN vals_fdom AS float8;
CREATE TABLE src_flt (id int PRIMARY KEY, f4 float4, f8 float8, fd vals_fdom, f4a float4[], f8a float8[],
                      fp vals_fpair);
INSERT INTO src_flt VALUES
  (1, 3.4e38, 1e308, 1.7976931348623157e308, '{3.4e38,-3.4028235e38}', '{1e308,-1e308}',
      ROW(3.4e38, 1e308, '{1.7976931348623157e308}')),
  (2, 1.17549e-38, 1e-308, 2.2250738585072014e-308, '{1.17549e-38,1.1754944e-38}', '{1e-308,-2.2250738585072014e-308}',
      ROW(1.17549e-38, 1e-308, '{1e-308}')),
  (3, 1e-45, -1.5e-320, 5e-324, '{1e-45,-1.4e-45}', '{-1.5e-320,5e-324}',
      ROW(1e-45, -1.5e-320, '{-1.5e-320}')),
  (4, 1e-7, 1.2345678901234e+200, 1e-7, '{1e-7,1e-5,0.0001}', '{1.2345678901234e+200,1e-7}',
      ROW(1e-7, 1.2345678901234e+200, '{1e-5}')),
  (5, 1.5e16, 1.5e16, 123456789012345678, '{1.5e16,123456789012345678}', '{1.5e16,123456789012345678}',
      ROW(123456789012345678, 123456789012345678, '{1.5e+16}')),
  (6, '-0', '-0', '-0', '{-0,0}', '{-0,-0}', ROW('-0', '-0', '{-0}')),
  (7, 0, 0, 0, '{0,0}', '{0,0}', ROW(0, 0, '{0}')),
  (8, 'NaN', 'NaN', 'Infinity', '{NaN,Infinity,-Infinity,NULL}', '{NaN,-Infinity,NULL}',
      ROW('NaN', '-Infinity', '{Infinity}')),
  (9, 1.5, -2.25, 100000, '{{1.5,2},{-0.5,0.25}}', '{{1.1,0.30000000000000004},{1e21,1e-300}}',
      ROW(0.1, 0.1, '{}')),
  (10, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE src_bool (id int PRIMARY KEY, b boolean);
INSERT INTO src_bool VALUES (1, true), (2, false), (3, NULL);

-- strings: control characters, quotes, backslashes, non-ASCII within and
-- beyond the BMP, DEL and C1 controls, JSON-looking text, empty strings
CREATE TABLE src_text (id int PRIMARY KEY, t text, vc varchar(40), c char(6));
INSERT INTO src_text VALUES
  (1, 'line1' || chr(10) || 'line2' || chr(13) || chr(9) || 'tab' || chr(1) || chr(31) || chr(8) || chr(12),
      'say "hi"', 'x\y'),
  (2, 'café 日本 ' || chr(128512), 'é', '日本'),
  (3, '', '', ''),
  (4, (SELECT string_agg(chr(i), '' ORDER BY i) FROM generate_series(1, 127) i), '\"\\/', 'null'),
  (5, chr(127) || chr(128) || chr(159) || chr(160) || chr(8232) || chr(8233) || chr(65279) || chr(65533) || chr(1114111),
      '{"a": 1}', '123'),
  (6, NULL, NULL, NULL);

-- bytea (hex or escape format, following bytea_output)
CREATE TABLE src_bytea (id int PRIMARY KEY, b bytea);
INSERT INTO src_bytea VALUES
  (1, '\x00ff10'), (2, ''), (3, '\x5c22410a'), (4, convert_to('é', 'UTF8')), (5, NULL);

-- date and time: JSON date encoding for date/timestamp/timestamptz (also
-- infinity and BC), output-function text for time, timetz and interval
CREATE TABLE src_dt (id int PRIMARY KEY, d date, t time, ttz timetz, ts timestamp, tstz timestamptz,
                     iv interval, ts0 timestamp(0));
INSERT INTO src_dt VALUES
  (1, '2024-02-29', '13:45:30.123456', '13:45:30.5+05:30', '2024-02-29 13:45:30.123456',
      '2024-02-29 13:45:30.123456+00', '1 year 2 mons 3 days 04:05:06.789', '2024-02-29 13:45:30.6'),
  (2, 'infinity', '24:00:00', '00:00:00-15:59', 'infinity', 'infinity', '-1 year -2 days +03:00:00', 'infinity'),
  (3, '-infinity', '00:00', '23:59:59.999999+14', '-infinity', '-infinity', '0', '-infinity'),
  (4, '0044-03-15 BC', '12:00', '12:00+00', '0044-03-15 12:00 BC', '0044-03-15 12:00:00+00 BC',
      '178000000 years', '0001-01-01 00:00 BC'),
  (5, '1800-01-01', '23:59:59.999999', '01:02:03-00:00:01', '1800-01-01 00:00', '1800-01-01 00:00+00',
      '-00:00:00.000001', '1800-01-01 00:00'),
  (6, '4713-11-24 BC', '00:00:00.000001', '00:00+01', '294276-12-31 23:59:59.999999',
      '2000-06-30 23:59:59.999999+02', '3 days -04:00', '294276-12-31 23:59:59'),
  (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- uuid, network types, money, geometry, xml and other string-like types
CREATE TABLE src_misc (id int PRIMARY KEY, u uuid, ip inet, cn cidr, m money, p point, bx box, x xml,
                       mac macaddr, bits varbit, tsv tsvector, nm name, ch "char", lsn pg_lsn,
                       rc regclass, o oid);
INSERT INTO src_misc VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.5/24', '10.0.0.0/8', 1234.56, '(1.5,-2)',
      '((0,0),(1,1))', '<a href="x">t&amp;é</a>', '08:00:2b:01:02:03', B'10110', 'fat:2 cat:1',
      'a"name', 'q', '16/B374D848', 'pg_class', 4294967295),
  (2, '00000000-0000-0000-0000-000000000000', '::ffff:1.2.3.4', '2001:db8::/32', -0.01, '(1e300,NaN)',
      '((-1,-2),(3,4))', E'<doc>\n  <line>one</line>\n</doc>', 'ff:ff:ff:ff:ff:ff', B'', '',
      '', '\', '0/0', 'pg_catalog.pg_type', 0),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- json is embedded as JSON (whitespace and newlines removed, duplicate
-- keys kept as written, which jsonb resolves as to_jsonb does); jsonb too.
-- A JSON null is not an SQL NULL.  DEL inside a JSON string is escaped too.
CREATE TABLE src_json (id int PRIMARY KEY, j json, jb jsonb);
INSERT INTO src_json VALUES
  (1, E'{\n  "a" : 1,\n\t"b" : [1, 2, {"c" : null}],\r\n "d": {"e": {"f": [[], {}]}}\n}',
      E'{\n "a": [1, {"b": "x y"}],\n "n": 1.50}'),
  (2, '{"k": 1, "k": 2, "k": {"deep": [true, false]}}', '{"k": 1, "k": 2}'),
  (3, '"quote \" backslash \\ newline \n tab \t escaped \u00e9 raw é \ud83d\ude00"',
      ('"é 日本 ' || chr(128512) || ' \" \\ \n"')::jsonb),
  (4, 'null', 'null'),
  (5, '  123.4500  ', '1.0e+2'),
  (6, '[]', '{}'),
  (7, ('{"clé": "日本", "emoji": "' || chr(128512) || '", "sp ace": " a  b "}')::json,
      ('{"clé": "日本", "emoji": "' || chr(128512) || '"}')::jsonb),
  (8, NULL, NULL),
  (9, ('["del ' || chr(127) || '", "tab\t"]')::json, ('{"del": "' || chr(127) || '"}')::jsonb);

-- arrays: nested by dimension, NULL elements, empty, lower bounds other
-- than 1 (which to_jsonb drops), elements of every kind
CREATE TYPE vals_pair AS (a int, b text);
CREATE TABLE src_arr (id int PRIMARY KEY, ia int[], ta text[], na numeric[], tsa timestamptz[],
                      pa vals_pair[], ja jsonb[], ba bool[]);
INSERT INTO src_arr VALUES
  (1, '{1,2,3}', '{"a\"b","c\\d","e,f","{g}"," ","NULL","é"}', '{1.50,NaN,-Infinity}',
      '{"2024-01-01 00:00+00",infinity}', ARRAY[(1,'x'),(2,NULL)]::vals_pair[],
      ARRAY['{"a": 1}', '[1, 2]', 'null']::jsonb[], '{t,f}'),
  (2, '{{1,2},{3,4}}', '{{a,b},{c,d}}', '{{1},{2}}', '{{"2024-01-01 00:00+00"},{"1999-12-31 23:59:59.5+00"}}',
      ARRAY[ARRAY[(1,'a')::vals_pair], ARRAY[(2,'b')::vals_pair]], '{{"{}"},{"[]"}}', '{{t},{f}}'),
  (3, '{1,NULL,3}', '{NULL,"null",""}', '{NULL}', '{NULL}', ARRAY[NULL::vals_pair, (NULL,NULL)::vals_pair],
      '{NULL}', '{NULL,t}'),
  (4, '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
  (5, '[2:3]={1,2}', '[0:1]={x,y}', '[-5:-5]={1}', '[3:3]={"2024-01-01 00:00+00"}',
      '[0:0]={"(7,z)"}', '[2:2]={"{}"}', '[-1:0]={f,t}'),
  (6, '{{{1},{2}},{{3},{4}}}', '{{{"a\"","b"}}}', '{{{1.0}}}', NULL, NULL, NULL, '{{{t}}}'),
  (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- enums; a user type with a cast to json is serialized through the cast
-- (as to_jsonb does), also inside arrays
CREATE TYPE vals_mood AS ENUM ('happy', 'so-so', 'très "sad"');
CREATE TYPE vals_color AS ENUM ('red', 'green');
CREATE FUNCTION vals_color_json(vals_color) RETURNS json LANGUAGE sql IMMUTABLE
  AS $$ SELECT (E'{\n  "color": "' || $1::text || E'",\n  "note": "é"\n}')::json $$;
CREATE CAST (vals_color AS json) WITH FUNCTION vals_color_json(vals_color);
CREATE TABLE src_enum (id int PRIMARY KEY, m vals_mood, c vals_color, ma vals_mood[], ca vals_color[]);
INSERT INTO src_enum VALUES
  (1, 'happy', 'red', '{happy,so-so}', '{red,green}'),
  (2, 'très "sad"', 'green', '{"très \"sad\"",NULL}', '{NULL}'),
  (3, NULL, NULL, NULL, NULL);

-- domains are looked through: over int, text, an array, a composite,
-- timestamptz, jsonb, numeric(6,2), another domain, and an enum with a cast
CREATE DOMAIN vals_posint AS int CHECK (VALUE > 0);
CREATE DOMAIN vals_posint2 AS vals_posint;
CREATE DOMAIN vals_email AS text CHECK (VALUE LIKE '%@%');
CREATE DOMAIN vals_intarr AS int[];
CREATE DOMAIN vals_pairdom AS vals_pair;
CREATE DOMAIN vals_ts AS timestamptz;
CREATE DOMAIN vals_js AS jsonb;
CREATE DOMAIN vals_money2 AS numeric(6,2);
CREATE DOMAIN vals_colordom AS vals_color;
CREATE TABLE src_dom (id int PRIMARY KEY, pi vals_posint, pi2 vals_posint2, em vals_email, ia vals_intarr,
                      pd vals_pairdom, ts vals_ts, js vals_js, n vals_money2, cd vals_colordom);
INSERT INTO src_dom VALUES
  (1, 1, 2, 'a"b@é.org', '{1,NULL}', (1,'p'), '2024-05-01 12:00+00', '{"x": [1, "y"]}', 1.5, 'red'),
  (2, 2147483647, 7, E'tab\t@x', '[0:1][1:2]={{1,2},{3,4}}', (NULL,NULL), '-infinity', '"s"', -9999.99, 'green'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- composite types: nested, with arrays, json and datetimes inside, with a
-- dropped attribute (which is skipped), and a table's row type; the tracked
-- table itself also has a dropped column
CREATE TYPE vals_inner AS (x int, gone text, label text, at timestamptz, iv interval, d date);
ALTER TYPE vals_inner DROP ATTRIBUTE gone;
CREATE TYPE vals_outer AS (inner_ vals_inner, tags text[], n numeric, flag bool, j json, f float8);
CREATE TABLE src_comp (id int PRIMARY KEY, p vals_pair, o vals_outer, ri src_int);
INSERT INTO src_comp VALUES
  (1, (1,'a'), ROW(ROW(1, 'lbl "q" é', '2024-01-01 00:00+00', '1 day 02:00', '2024-01-01'),
                   '{a,"b c"}', 1.50, true, E'{"x" : [1,\n 2]}', 'NaN'), (1, -1, 2, 3)),
  (2, (NULL,NULL), ROW(NULL, NULL, NULL, NULL, NULL, NULL), (2, NULL, NULL, NULL)),
  (3, ROW(0, ''), ROW(ROW(NULL, NULL, 'infinity', NULL, '0044-03-15 BC'), '{}', 'Infinity', false, 'null', 1e-300), NULL),
  (4, NULL, NULL, NULL);

-- ranges and multiranges, bounded, unbounded and empty; a user-defined
-- range type (no cast: its text)
CREATE TYPE vals_floatrange AS RANGE (subtype = float8);
CREATE TABLE src_range (id int PRIMARY KEY, i4r int4range, nr numrange, tr tstzrange, dr daterange,
                        mr int4multirange, ur vals_floatrange);
INSERT INTO src_range VALUES
  (1, '[1,10)', '(1.5,2.50]', '[2024-01-01 00:00+00,2024-01-02 00:00+00)', '[2024-01-01,infinity)',
      '{[1,3),[5,7)}', '[1.5,2.5]'),
  (2, 'empty', 'empty', 'empty', 'empty', '{}', 'empty'),
  (3, '(,)', '(,5)', '[2024-01-01 00:00+00,)', '(,)', '{(,)}', '(,)'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL);

-- column names that need escaping as JSON keys
CREATE TABLE src_names (id int PRIMARY KEY, "we""ird" int, "é" text, "back\slash" text,
                        U&"new\000aline" text, "日本 😀" bool);
INSERT INTO src_names VALUES (1, 1, 'e', 'b', 'n', true), (2, NULL, NULL, NULL, NULL, NULL);

INSERT INTO vals_fam VALUES
  (1, 'int'), (2, 'num'), (3, 'bool'), (4, 'text'), (5, 'bytea'), (6, 'dt'), (7, 'misc'),
  (8, 'json'), (9, 'arr'), (10, 'enum'), (11, 'dom'), (12, 'comp'), (13, 'range'), (14, 'names'),
  (15, 'flt');

-- The tracked copies.  v_comp gets a dropped column before its live ones.
CREATE TABLE v_int (LIKE src_int INCLUDING ALL);
CREATE TABLE v_num (LIKE src_num INCLUDING ALL);
CREATE TABLE v_bool (LIKE src_bool INCLUDING ALL);
CREATE TABLE v_text (LIKE src_text INCLUDING ALL);
CREATE TABLE v_bytea (LIKE src_bytea INCLUDING ALL);
CREATE TABLE v_dt (LIKE src_dt INCLUDING ALL);
CREATE TABLE v_misc (LIKE src_misc INCLUDING ALL);
CREATE TABLE v_json (LIKE src_json INCLUDING ALL);
CREATE TABLE v_arr (LIKE src_arr INCLUDING ALL);
CREATE TABLE v_enum (LIKE src_enum INCLUDING ALL);
CREATE TABLE v_dom (LIKE src_dom INCLUDING ALL);
CREATE TABLE v_comp (id int PRIMARY KEY, gone int, p vals_pair, o vals_outer, ri src_int);
ALTER TABLE v_comp DROP COLUMN gone;
CREATE TABLE v_range (LIKE src_range INCLUDING ALL);
CREATE TABLE v_names (LIKE src_names INCLUDING ALL);
CREATE TABLE v_flt (LIKE src_flt INCLUDING ALL);

SELECT activity_audit.track('v_int');
SELECT activity_audit.track('v_num');
SELECT activity_audit.track('v_bool');
SELECT activity_audit.track('v_text');
SELECT activity_audit.track('v_bytea');
SELECT activity_audit.track('v_dt');
SELECT activity_audit.track('v_misc');
SELECT activity_audit.track('v_json');
SELECT activity_audit.track('v_arr');
SELECT activity_audit.track('v_enum');
SELECT activity_audit.track('v_dom');
SELECT activity_audit.track('v_comp');
SELECT activity_audit.track('v_range');
SELECT activity_audit.track('v_names');
SELECT activity_audit.track('v_flt');

--
-- Checking machinery.
--

-- Per row of rowsrc: how many events of type etype of phase p on table tbl
-- describe it, and whether their instance_repr equals to_jsonb() of the row.
CREATE FUNCTION vals_repr(p text, etype text, tbl text, rowsrc text)
RETURNS TABLE(id int, events bigint, same boolean, same_text boolean)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    SELECT vals_row.id, count(e.n),
           bool_and(e.event->'instance_repr' = to_jsonb(vals_row)),
           bool_and(vals_canon(e.raw::json->'instance_repr') = vals_canon(to_jsonb(vals_row)::json))
      FROM %I vals_row
      LEFT JOIN vals_ev e
        ON e.phase = %L AND e.event->>'event_type' = %L AND e.event->>'table' = %L
       AND e.event->>'instance_id' = vals_row.id::text
     GROUP BY vals_row.id ORDER BY vals_row.id$q$, rowsrc, p, etype, tbl);
END
$$;

-- One line per family: rows, events, and the ids whose event is missing,
-- duplicated or differs from to_jsonb().
CREATE FUNCTION vals_repr_summary(p text, etype text, srcprefix text)
RETURNS TABLE(tbl text, nrows bigint, events numeric, all_same boolean, bad_ids text)
LANGUAGE sql AS $$
  SELECT 'v_' || f.fam, count(*), sum(r.events),
         bool_and(coalesce(r.same AND r.same_text, false)),
         string_agg(r.id::text, ',' ORDER BY r.id)
           FILTER (WHERE r.events <> 1 OR NOT coalesce(r.same AND r.same_text, false))
    FROM vals_fam f, vals_repr(p, etype, 'v_' || f.fam, srcprefix || f.fam) r
   GROUP BY f.ord, f.fam ORDER BY f.ord
$$;

-- The UPDATE oracle.  Every row id of v_<fam> was updated from the values
-- of src_<fam> row id to those of another source row, so the old row is
-- src_<fam> row id and the new row is v_<fam> row id.  Checked: one event
-- per row that changed; instance_repr is to_jsonb(new row); changes lists
-- exactly the columns whose to_jsonb() text changed (so a float going from
-- -0 to 0, both 0 in to_jsonb, has not changed); each entry has
-- old = to_jsonb(old)->col and new = to_jsonb(new)->col, as text.
CREATE FUNCTION vals_changes(p text, fam text)
RETURNS TABLE(id int, changed int, events bigint, repr_same boolean, keys_ok boolean, old_ok boolean, new_ok boolean)
LANGUAGE plpgsql AS $$
DECLARE
  diffs text;
BEGIN
  SELECT string_agg(format('(%L, to_jsonb(vals_old.%I)::text IS DISTINCT FROM to_jsonb(vals_new.%I)::text)',
                           a.attname, a.attname, a.attname),
                    ', ' ORDER BY a.attnum)
    INTO diffs
    FROM pg_attribute a
   WHERE a.attrelid = ('v_' || fam)::regclass AND a.attnum > 0 AND NOT a.attisdropped;
  RETURN QUERY EXECUTE format($q$
    SELECT vals_old.id, cardinality(d.cols), count(e.n),
           bool_and(e.event->'instance_repr' = to_jsonb(vals_new)
                    AND vals_canon(e.raw::json->'instance_repr') = vals_canon(to_jsonb(vals_new)::json)),
           bool_and(ARRAY(SELECT jsonb_object_keys(e.event->'changes') ORDER BY 1) = d.cols),
           bool_and(NOT EXISTS (SELECT 1 FROM json_each(e.raw::json->'changes') c
                                 WHERE vals_canon(c.value->'old') IS DISTINCT FROM vals_canon((to_jsonb(vals_old)->c.key)::json)
                                    OR NOT c.value::jsonb ?& '{old,new}' OR (SELECT count(*) FROM json_object_keys(c.value)) <> 2)),
           bool_and(NOT EXISTS (SELECT 1 FROM json_each(e.raw::json->'changes') c
                                 WHERE vals_canon(c.value->'new') IS DISTINCT FROM vals_canon((to_jsonb(vals_new)->c.key)::json)))
      FROM %I vals_old
      JOIN %I vals_new ON vals_new.id = vals_old.id
      CROSS JOIN LATERAL (SELECT ARRAY(SELECT v.c FROM (VALUES %s) v(c, differs)
                                        WHERE v.differs ORDER BY 1) AS cols) d
      LEFT JOIN vals_ev e
        ON e.phase = %L AND e.event->>'event_type' = 'UPDATE' AND e.event->>'table' = %L
       AND e.event->>'instance_id' = vals_old.id::text
     GROUP BY vals_old.id, d.cols ORDER BY vals_old.id$q$, 'src_' || fam, 'v_' || fam, diffs, p, 'v_' || fam);
END
$$;

-- The event text of instance_repr exactly as written (json keeps the text).
CREATE FUNCTION vals_show(p text, etype text, tbl text)
RETURNS TABLE(id text, instance_repr text)
LANGUAGE sql AS $$
  SELECT e.event->>'instance_id', (e.raw::json->'instance_repr')::text
    FROM vals_ev e
   WHERE e.phase = p AND e.event->>'event_type' = etype AND e.event->>'table' = tbl
   ORDER BY (e.event->>'instance_id')::int
$$;

--
-- Phase A: pg_regress's default settings.  All rows are inserted in one
-- transaction, whose txid and time window are recorded.
--
SHOW DateStyle;
SHOW TimeZone;
SHOW IntervalStyle;
SHOW extra_float_digits;
SHOW bytea_output;

BEGIN;
DO $$
DECLARE f record;
BEGIN
  FOR f IN SELECT fam FROM vals_fam ORDER BY ord LOOP
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', 'v_' || f.fam, 'src_' || f.fam);
  END LOOP;
END
$$;
INSERT INTO vals_xact SELECT 'A', txid_current(), transaction_timestamp(), clock_timestamp();
COMMIT;
SELECT vals_grab('A') AS events;

-- one CREATE event per row, equal to to_jsonb(row)
SELECT 'v_' || f.fam AS tbl, r.*
  FROM vals_fam f, vals_repr('A', 'CREATE', 'v_' || f.fam, 'v_' || f.fam) r
 ORDER BY f.ord, r.id;

-- what the values look like in the event text
SELECT * FROM vals_show('A', 'CREATE', 'v_int');
SELECT * FROM vals_show('A', 'CREATE', 'v_num');
SELECT * FROM vals_show('A', 'CREATE', 'v_text');
SELECT * FROM vals_show('A', 'CREATE', 'v_bytea');
SELECT * FROM vals_show('A', 'CREATE', 'v_dt');
SELECT * FROM vals_show('A', 'CREATE', 'v_misc');
SELECT * FROM vals_show('A', 'CREATE', 'v_json');
SELECT * FROM vals_show('A', 'CREATE', 'v_arr');
SELECT * FROM vals_show('A', 'CREATE', 'v_enum');
SELECT * FROM vals_show('A', 'CREATE', 'v_comp');
SELECT * FROM vals_show('A', 'CREATE', 'v_names');
SELECT * FROM vals_show('A', 'CREATE', 'v_flt');

--
-- Phase B: other formatting settings.  to_jsonb follows them for floats,
-- interval, bytea, timestamptz's offset, and the text of timestamps inside
-- ranges; the JSON date encoding ignores DateStyle.  Delete every row (the
-- DELETE event shows the old row, compared with its source copy) and insert
-- them again.
--
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = 0;
SET IntervalStyle = 'sql_standard';
SET bytea_output = 'escape';

BEGIN;
DO $$
DECLARE f record;
BEGIN
  FOR f IN SELECT fam FROM vals_fam ORDER BY ord LOOP
    EXECUTE format('DELETE FROM %I', 'v_' || f.fam);
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', 'v_' || f.fam, 'src_' || f.fam);
  END LOOP;
END
$$;
INSERT INTO vals_xact SELECT 'B', txid_current(), transaction_timestamp(), clock_timestamp();
COMMIT;
SELECT vals_grab('B') AS events;

SELECT * FROM vals_repr_summary('B', 'DELETE', 'src_');
SELECT * FROM vals_repr_summary('B', 'CREATE', 'v_');

SELECT * FROM vals_show('B', 'CREATE', 'v_num');
SELECT * FROM vals_show('B', 'CREATE', 'v_bytea');
SELECT * FROM vals_show('B', 'CREATE', 'v_dt');
SELECT * FROM vals_show('B', 'CREATE', 'v_range');
SELECT * FROM vals_show('B', 'CREATE', 'v_arr');
SELECT * FROM vals_show('B', 'DELETE', 'v_comp');
SELECT * FROM vals_show('B', 'CREATE', 'v_flt');

--
-- Phase C: yet other settings, and UPDATEs: every row takes the values of
-- the next source row (the last one those of the first).
--
SET TimeZone = 'Asia/Kathmandu';
SET DateStyle = 'German';
SET extra_float_digits = 3;
SET IntervalStyle = 'iso_8601';
SET bytea_output = 'hex';

BEGIN;
DO $$
DECLARE
  f record;
  sets text;
  cols text;
BEGIN
  FOR f IN SELECT fam FROM vals_fam ORDER BY ord LOOP
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum)
      INTO sets, cols
      FROM pg_attribute a
     WHERE a.attrelid = ('v_' || f.fam)::regclass AND a.attnum > 1 AND NOT a.attisdropped;
    EXECUTE format('UPDATE %I t SET (%s) = (SELECT %s FROM %I s WHERE s.id = t.id %% (SELECT max(id) FROM %I) + 1)',
                   'v_' || f.fam, sets, cols, 'src_' || f.fam, 'src_' || f.fam);
  END LOOP;
END
$$;
INSERT INTO vals_xact SELECT 'C', txid_current(), transaction_timestamp(), clock_timestamp();
COMMIT;
SELECT vals_grab('C') AS events;

SELECT 'v_' || f.fam AS tbl, count(*) AS nrows, sum(r.events) AS events,
       bool_and(r.events = CASE WHEN r.changed > 0 THEN 1 ELSE 0 END) AS events_ok,
       bool_and(r.events = 0 OR coalesce(r.repr_same AND r.keys_ok AND r.old_ok AND r.new_ok, false)) AS all_ok,
       string_agg(r.id::text, ',' ORDER BY r.id)
         FILTER (WHERE r.events <> CASE WHEN r.changed > 0 THEN 1 ELSE 0 END
                    OR (r.events > 0 AND NOT coalesce(r.repr_same AND r.keys_ok AND r.old_ok AND r.new_ok, false))) AS bad_ids
  FROM vals_fam f, vals_changes('C', f.fam) r
 GROUP BY f.ord, f.fam ORDER BY f.ord;

-- a few changes as written
SELECT e.event->>'instance_id' AS id, (e.raw::json->'changes')::text AS changes
  FROM vals_ev e
 WHERE e.phase = 'C' AND e.event->>'table' IN ('v_num', 'v_dt', 'v_flt')
 ORDER BY e.event->>'table', (e.event->>'instance_id')::int;

--
-- Phase D: floats whose bytes change while their JSON text does not are
-- not changes: -0 to 0, a NaN to a NaN of other bits (Infinity - Infinity
-- gives the processor's default NaN, not the one 'NaN' reads as), and,
-- with extra_float_digits = 0 (which rounds to 15 digits), two doubles that
-- print alike.  Row 1's second update and row 4's are real changes.
--
RESET extra_float_digits;
CREATE TABLE v_fupd (id int PRIMARY KEY, f8 float8, f4 float4, fa float8[], fp vals_fpair, note text);
SELECT activity_audit.track('v_fupd');
INSERT INTO v_fupd VALUES
  (1, '-0', '-0', '{-0}', ROW('-0', '-0', '{-0}'), 'a'),
  (2, 'NaN', 'NaN', '{NaN}', ROW('NaN', 'NaN', '{NaN}'), 'a'),
  (3, 0.1::float8 + 0.2, 0.1, '{0.30000000000000004}', ROW(0.1, 0.1::float8 + 0.2, NULL), 'a'),
  (4, 1e20, 1e10, '{1e20}', NULL, 'a');
SELECT count(*) AS drained FROM audit_raw();
SELECT float8send('Infinity'::float8 - 'Infinity'::float8) <> float8send('NaN') AS other_nan_f8,
       float4send('Infinity'::float4 - 'Infinity'::float4) <> float4send('NaN') AS other_nan_f4,
       0.1::float8 + 0.2 <> 0.3 AS distinct_doubles;
BEGIN;
UPDATE v_fupd SET f8 = 0, f4 = 0, fa = '{0}', fp = ROW(0, 0, '{0}') WHERE id = 1;
UPDATE v_fupd SET f8 = 'Infinity'::float8 - 'Infinity'::float8, f4 = 'Infinity'::float4 - 'Infinity'::float4,
                  fa = ARRAY['Infinity'::float8 - 'Infinity'::float8],
                  fp = ROW('Infinity'::float4 - 'Infinity'::float4, 'Infinity'::float8 - 'Infinity'::float8,
                           ARRAY['Infinity'::float8 - 'Infinity'::float8])
 WHERE id = 2;
SET LOCAL extra_float_digits = 0;
UPDATE v_fupd SET f8 = 0.3, fa = '{0.3}', fp = ROW(0.1, 0.3, NULL) WHERE id = 3;
UPDATE v_fupd SET f8 = '-0', note = 'b' WHERE id = 1;
UPDATE v_fupd SET f8 = 2e-20, f4 = '-0' WHERE id = 4;
INSERT INTO vals_xact SELECT 'D', txid_current(), transaction_timestamp(), clock_timestamp();
COMMIT;
SELECT vals_grab('D') AS events;
SELECT e.event->>'instance_id' AS id, (e.raw::json->'changes')::text AS changes,
       vals_canon(e.raw::json->'instance_repr') = vals_canon(to_jsonb(v)::json) AS repr_same
  FROM vals_ev e JOIN v_fupd v ON v.id::text = e.event->>'instance_id'
 WHERE e.phase = 'D'
 ORDER BY e.n;

--
-- Every event: one line of printable ASCII (no raw newline, carriage
-- return or tab, no DEL or other control or non-ASCII byte), valid JSON
-- (vals_grab already parsed it), a UTC timestamp with microseconds within
-- its transaction, this backend's pid and its transaction's txid.
--
SELECT e.phase, count(*) AS events,
       count(*) FILTER (WHERE e.raw ~ '[\n\r\t]') AS raw_newline_or_tab,
       count(*) FILTER (WHERE e.raw ~ '[^\x20-\x7e]') AS not_printable_ascii,
       count(*) FILTER (WHERE e.raw::json IS NULL OR e.raw::jsonb IS NULL) AS not_json,
       count(*) FILTER (WHERE e.event->>'timestamp' !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS bad_timestamp_format,
       count(*) FILTER (WHERE (e.event->>'timestamp')::timestamptz NOT BETWEEN x.started AND x.finished) AS timestamp_outside_xact,
       count(*) FILTER (WHERE e.event->'backend_pid' <> to_jsonb(pg_backend_pid())) AS other_pid,
       count(*) FILTER (WHERE jsonb_typeof(e.event->'txid') <> 'number'
                           OR (e.event->>'txid')::bigint <> x.xid) AS other_txid
  FROM vals_ev e JOIN vals_xact x USING (phase)
 GROUP BY e.phase ORDER BY e.phase;

-- instance_repr's keys are written in column order
SELECT count(*) AS events,
       count(*) FILTER (WHERE ARRAY(SELECT json_object_keys(e.raw::json->'instance_repr'))
                              <> ARRAY(SELECT a.attname::text FROM pg_attribute a
                                        WHERE a.attrelid = (e.event->>'table')::regclass
                                          AND a.attnum > 0 AND NOT a.attisdropped
                                        ORDER BY a.attnum)) AS out_of_order
  FROM vals_ev e;

-- non-ASCII text is written as \u escapes (surrogate pairs beyond the BMP),
-- control characters (DEL included) as JSON escapes
SELECT bool_or(position('"t":"caf\u00e9 \u65e5\u672c \ud83d\ude00"' IN raw) > 0) AS escaped_non_ascii,
       bool_or(position('"t":"line1\nline2\r\ttab\u0001\u001f\b\f"' IN raw) > 0) AS escaped_controls,
       bool_or(position('"t":"\u007f\u0080\u009f\u00a0\u2028\u2029\ufeff\ufffd\udbff\udfff"' IN raw) > 0) AS escaped_del_c1,
       bool_or(position('"vc":"say \"hi\""' IN raw) > 0) AS escaped_quotes,
       bool_or(position('"c":"x\\y   "' IN raw) > 0) AS escaped_backslash
  FROM vals_ev e
 WHERE e.phase = 'A' AND e.event->>'table' = 'v_text' AND e.event->>'event_type' = 'CREATE';

-- nothing else is pending
SELECT count(*) AS pending FROM audit_raw();

-- clean up
RESET lc_monetary;
RESET TimeZone;
RESET DateStyle;
RESET extra_float_digits;
RESET IntervalStyle;
RESET bytea_output;
DROP TABLE v_int, v_num, v_bool, v_text, v_bytea, v_dt, v_misc, v_json, v_arr, v_enum, v_dom,
           v_comp, v_range, v_names, v_flt, v_fupd;
DROP TABLE src_int, src_num, src_bool, src_text, src_bytea, src_dt, src_misc, src_json, src_arr, src_enum,
           src_dom, src_comp, src_range, src_names, src_flt;
DROP FUNCTION vals_grab(text), vals_repr(text, text, text, text), vals_repr_summary(text, text, text),
              vals_canon(json),
              vals_changes(text, text), vals_show(text, text, text);
DROP TABLE vals_ev, vals_xact, vals_fam;
DROP DOMAIN vals_posint2, vals_posint, vals_email, vals_intarr, vals_pairdom, vals_ts, vals_js,
            vals_money2, vals_colordom, vals_fdom;
DROP TYPE vals_outer, vals_inner, vals_pair, vals_mood, vals_floatrange, vals_fpair;
DROP CAST (vals_color AS json);
DROP FUNCTION vals_color_json(vals_color);
DROP TYPE vals_color;

-- bench/insert.sql — the INSERT workload: rows :lo .. :hi into table :tbl.
-- Values are meant to look like application data: c is 20–39 characters, g mixes plain
-- ASCII, non-ASCII and quote characters (so JSON escaping is exercised), d is a
-- two-decimal numeric, e walks forward in time.
INSERT INTO :"tbl" (id, a, b, c, d, e, f, g)
SELECT i,
       (i % 1000)::int,
       i * 7919,
       'user_' || substr(md5(i::text), 1, 15 + (i % 20)::int),
       round((i % 100000)::numeric / 7, 2),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds',
       i % 3 = 0,
       CASE i % 10
           WHEN 0 THEN 'Zoë Müller, café order #' || i
           WHEN 5 THEN 'O''Brien said "ship it" #' || i
           ELSE 'order note #' || i || ' lorem ipsum dolor'
       END
FROM generate_series(:lo::bigint, :hi::bigint) AS i;

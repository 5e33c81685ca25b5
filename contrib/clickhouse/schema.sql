-- contrib/clickhouse/schema.sql: a ClickHouse table for activity_audit's
-- stream (the file sink's JSON Lines), for a fleet of servers.
--
-- Written for and tested against Debian's clickhouse-server 18.16 (TAP test
-- 060_clickhouse.pl); it also loads in current releases.  Load it with
--
--     clickhouse-client --multiquery < contrib/clickhouse/schema.sql
--
-- and ship the files with contrib/vector/vector.toml (or anything that does
-- the same: one JSONEachRow row per line, fields as listed below).
--
-- What the shipper sends, per line of the stream:
--   - the line's top-level keys of the table below, as they are, except
--     that the nested objects (instance_repr, changes, user_info, extra) are
--     sent as their JSON text (18.16 has no JSON type: Vector's
--     encode_json()), and a key that is absent or null stays NULL;
--   - line: the whole line, byte for byte (without its "\n");
--   - stream: which stream the line belongs to.  The line does not say it
--     (a primary's lines and its standbys' are the same bytes, and every
--     byte is hashed): the shipper adds pg_control_system().system_identifier
--     of the server whose files it reads, as text.  A primary and its
--     physical standbys share that identifier and one stream, so after a
--     failover the promoted server ships the same stream, seq running on,
--     with no change to the shipper's configuration; shipping from the
--     primary and from a standby at once only makes duplicates;
--   - host: the server the shipper runs on (informational, not in the key:
--     of identical copies from several servers one is kept).
--
-- Keys and duplicates.  A row is identified by (stream, seq, hash).  The
-- sort key below is (stream, db, schema, table, instance_id, seq, hash):
-- the columns before seq are functions of the line, so two copies of one
-- line have the same sort key and ReplacingMergeTree keeps one of them
-- when it merges parts.  Merges happen in the background, so a query that
-- counts must say FINAL (or count uniqExact(stream, seq, hash)): the same
-- line ingested twice then counts once.  That is what makes an at-least-once
-- shipper (Vector after a crash or a failed request, two shippers on a
-- primary and its standby) harmless.
--
-- Forks.  Servers cloned from one base backup, and the two sides of an
-- asynchronous failover (the old primary went on committing after the
-- standby was promoted), share the system identifier and the stream's
-- history up to the fork, then each writes its own lines with the same seq
-- numbers.  Their lines differ in hash (the chain covers every earlier
-- line), so they stay apart as rows: up to the fork both sides' lines are
-- the same line and count once, after it each side's rows are there.  To
-- find forks: the (stream, seq) with more than one hash (query 5 below);
-- host says which server shipped which side.  A clone meant to live on as
-- a server of its own should be shipped under a stream name of its own
-- (say the identifier followed by "/" and its name), so that its rows can
-- be told from the original's without following the chain.
--
-- The sort key serves one row's history (all events of one row, in order:
-- query 1).  A user's actions over time are served by the second table,
-- audit_events_by_user, sorted by (user_id, committed_at), which a
-- materialized view fills on every insert (18.16 has neither projections
-- nor skipping indexes, and a Nullable column cannot be in a sort key, hence
-- ifNull()).  With a current ClickHouse (23.x and later) do better:
--   - DateTime64(6, 'UTC') for timestamp and committed_at (18.16's DateTime
--     has seconds; the microseconds are in timestamp_us/committed_at_us);
--   - a PROJECTION ordered by (user_id, committed_at) instead of the second
--     table, or a bloom_filter skipping index on user_id;
--   - LowCardinality(String) for level, name, event_type, model, schema,
--     table, db, db_user, service_name;
--   - the JSON type (or String with JSONExtract*) for the nested objects;
--   - JSONAsString, which takes raw lines, so a shipper need not parse them;
--   - insert deduplication (non_replicated_deduplication_window) on top of
--     the ReplacingMergeTree, which still is what makes counts right.
--
-- Example queries (all with FINAL; drop it only where duplicates cannot
-- matter):
--
--  1. Who changed this row, and how (one row's history, in stream order):
--       SELECT seq, timestamp, event_type, db_user, user_id, request_id, changes
--         FROM audit_events FINAL
--        WHERE stream = '7714519630390349776' AND db = 'app'
--          AND schema = 'public' AND table = 'orders' AND instance_id = '42'
--        ORDER BY seq;
--
--  2. Changes per user per day:
--       SELECT toDate(committed_at) AS day, user_id, count() AS changes
--         FROM audit_events FINAL
--        WHERE name = 'audit.model'
--        GROUP BY day, user_id ORDER BY day, user_id;
--     or, without FINAL: uniqExact(stream, seq, hash) in place of count().
--
--  3. What one user did over time (the second table, then the events):
--       SELECT committed_at, stream, seq, event_type, model, instance_id
--         FROM audit_events_by_user FINAL
--        WHERE user_id = 'alice' AND committed_at >= now() - 86400
--        ORDER BY committed_at, seq;
--
--  4. Counts per user, model and event type:
--       SELECT user_id, model, event_type, count()
--         FROM audit_events FINAL
--        GROUP BY user_id, model, event_type;
--
--  5. Forks (the same seq with different lines) and lines that are not what
--     their hash says (a hash covers prev_hash and the line up to its
--     fixed-size ,"prev_hash":"...","hash":"..."} suffix, 154 bytes):
--       SELECT stream, seq, groupArray(host), groupArray(hash)
--         FROM audit_events FINAL
--        GROUP BY stream, seq HAVING uniqExact(hash) > 1;
--       SELECT stream, seq FROM audit_events
--        WHERE hash != lower(hex(SHA256(concat(prev_hash,
--                          substring(line, 1, length(line) - 154)))));
--     The proof of the whole chain stays activity_audit_verify on the files.

CREATE TABLE IF NOT EXISTS audit_events
(
    stream            String,
    host              String,
    seq               UInt64,
    hash              FixedString(64),
    prev_hash         FixedString(64),
    lsn               String,
    timestamp         DateTime('UTC'),
    committed_at      DateTime('UTC'),
    level             String,
    name              String,
    message           String,
    event_type        String,
    request_id        Nullable(String),
    service_name      Nullable(String),
    model             Nullable(String),
    instance_id       Nullable(String),
    instance_repr     Nullable(String),
    changes           Nullable(String),
    user_id           Nullable(String),
    user_info         Nullable(String),
    extra             Nullable(String),
    schema            Nullable(String),
    table             Nullable(String),
    db                Nullable(String),
    db_user           Nullable(String),
    session_user      Nullable(String),
    application_name  Nullable(String),
    client_addr       Nullable(String),
    backend_pid       Nullable(Int64),
    txid              Nullable(UInt64),
    line              String,
    -- the microseconds, from the line's fixed places: it starts with
    -- {"timestamp":"YYYY-MM-DDTHH:MM:SS.ffffffZ" and ends with
    -- "committed_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ" and the 154-byte suffix
    timestamp_us      UInt32 MATERIALIZED toUInt32OrZero(substring(line, 35, 6)),
    committed_at_us   UInt32 MATERIALIZED toUInt32OrZero(substring(line, length(line) - 161, 6))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(committed_at)
ORDER BY (stream, ifNull(db, ''), ifNull(schema, ''), ifNull(table, ''),
          ifNull(instance_id, ''), seq, hash);

CREATE TABLE IF NOT EXISTS audit_events_by_user
(
    user_id           Nullable(String),
    committed_at      DateTime('UTC'),
    stream            String,
    seq               UInt64,
    hash              FixedString(64),
    event_type        String,
    name              String,
    model             Nullable(String),
    db                Nullable(String),
    schema            Nullable(String),
    table             Nullable(String),
    instance_id       Nullable(String),
    request_id        Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(committed_at)
ORDER BY (ifNull(user_id, ''), committed_at, stream, seq, hash);

CREATE MATERIALIZED VIEW IF NOT EXISTS audit_events_by_user_mv
TO audit_events_by_user
AS SELECT user_id, committed_at, stream, seq, hash,
          event_type, name, model, db, schema, table, instance_id, request_id
     FROM audit_events
    WHERE user_id IS NOT NULL;

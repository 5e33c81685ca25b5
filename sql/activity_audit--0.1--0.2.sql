-- activity_audit 0.1 -> 0.2
--
-- Release 0.2 changes what the library writes into the WAL (signatures bound
-- to each message, the compact format: audit.wal_format), not the SQL
-- objects: this script has nothing to change.  The writer still delivers
-- the messages 0.1 wrote before the upgrade.  A fresh CREATE EXTENSION runs
-- activity_audit--0.1.sql, then this script.

\echo Use "ALTER EXTENSION activity_audit UPDATE TO '0.2'" to load this file. \quit

# 003_dump_restore.pl: the audit configuration survives pg_dump and restore.
#
# track() keeps the configuration in the trigger definitions only, so a dump
# carries it: after restoring into a new database the same tables are
# tracked with the same model, exclude, redact and no-op settings (also for
# a partitioned table and its partitions), the restored rows did not produce
# events (triggers are created after the data), and new writes are audited
# as before.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest;

# full WAL format: the test reads self-contained events from its slot
my $node = audit_node('dump', conf => "audit.wal_format = full\n");

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE patients (id int PRIMARY KEY, name text, email text, ssn text);
	SELECT activity_audit.track('patients', model_name => 'Patient',
	                            exclude => '{ssn}', redact => '{email}',
	                            log_noop_updates => true);
	CREATE TABLE "Odd ""Name""" (k text PRIMARY KEY, v int);
	SELECT activity_audit.track('"Odd ""Name"""');
	CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
	CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
	SELECT activity_audit.track('m', model_name => 'Measure');
	INSERT INTO patients VALUES (1, 'Ann', 'a@b.c', '123');
	INSERT INTO m VALUES (1, 'x');
	});

my $tracked_sql = q{
	SELECT table_name::text, model_name, exclude, redact, log_noop_updates
	  FROM activity_audit.tracked ORDER BY 1};
my $before = $node->safe_psql('src', $tracked_sql);

my $dump = $node->basedir . '/src.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump of a database with tracked tables');

$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->safe_psql('dst',
	q{SELECT 1 FROM pg_create_logical_replication_slot('dump_slot', 'test_decoding')});
$node->command_ok(
	[ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a new database');

is($node->safe_psql('dst', $tracked_sql),
	$before, 'the same tables are tracked with the same configuration');
is( $node->safe_psql(
		'dst', q{
		SELECT string_agg(t.tgrelid::regclass::text || ':' || t.tgname, ','
		                  ORDER BY t.tgrelid::regclass::text || ':' || t.tgname COLLATE "C")
		  FROM pg_trigger t WHERE t.tgname LIKE 'activity\_audit\_%' AND t.tgparentid = 0}
	),
	'"Odd ""Name""":activity_audit_capture,"Odd ""Name""":activity_audit_truncate,'
	  . 'm1:activity_audit_truncate,m:activity_audit_capture,m:activity_audit_truncate,'
	  . 'patients:activity_audit_capture,patients:activity_audit_truncate',
	'triggers of the tables and of the partition are restored');

# Writes after the restore are audited with the restored configuration.
$node->safe_psql(
	'dst', q{
	UPDATE patients SET name = name;
	UPDATE patients SET email = 'z@b.c', ssn = '999';
	INSERT INTO m VALUES (2, 'y');
	TRUNCATE m;
	});
my $events = $node->safe_psql(
	'dst', q{
	SELECT concat_ws(' ', e->>'event_type', e->>'model', e->>'table',
	                 e->'instance_repr', coalesce((e->'changes')::text, '-'))
	  FROM (SELECT substring(data FROM 'content:(.*)$')::jsonb AS e
	          FROM pg_logical_slot_get_changes('dump_slot', NULL, NULL)
	         WHERE data LIKE 'message: transactional: 1 prefix: activity_audit, %') s});
is( $events,
	join("\n",
		'UPDATE Patient patients {"id": 1, "name": "Ann", "email": "[REDACTED]"} {}',
		'UPDATE Patient patients {"id": 1, "name": "Ann", "email": "[REDACTED]"} {"email": {"new": "[REDACTED]", "old": "[REDACTED]"}}',
		'CREATE Measure m1 {"v": "y", "id": 2} -',
		'TRUNCATE Measure m1 null -'),
	'only new writes are events, audited as configured before the dump');

$node->stop;
done_testing();

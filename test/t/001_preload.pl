# Copyright: activity_audit contributors
#
# 001_preload.pl: the library must be in shared_preload_libraries, and
# auditing fails closed without it; audit.enabled is superuser-only and the
# audit.* prefix is reserved.
#
#  (a) CREATE EXTENSION on a server without the preload fails with an error
#      that says what to do, and creates nothing.
#  (b) A database where the extension is installed and a table tracked,
#      restarted without the preload: every write to the tracked table, and
#      track() itself, fail with the same error and change nothing; other
#      tables stay writable.  With the preload back, auditing resumes.
#  (d) audit.enabled: only a superuser may turn it off, and then the
#      session's writes produce no row events (one AUDIT_SUPPRESSED per
#      transaction says so); unknown audit.* names are refused.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The error every refused operation must raise, and its hint.
my $preload_error =
  qr/activity_audit must be loaded via shared_preload_libraries/;
my $preload_hint =
  qr/HINT:\s+Add 'activity_audit' to shared_preload_libraries in postgresql\.conf and restart the server\./;

# Run SQL that must fail; return its stderr for further checks.
sub psql_fails
{
	my ($node, $db, $sql, $test_name) = @_;
	my ($stdout, $stderr);
	my $ret = $node->psql(
		$db, $sql,
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_stop => 1);
	isnt($ret, 0, "$test_name: fails");
	return $stderr;
}

# Event types (and ids) written since the last call, read through the
# test_decoding slot "tap_slot", one "EVENT_TYPE id" line per event.
sub slot_events
{
	my ($node, $db) = @_;
	return $node->safe_psql(
		$db, q{
		SELECT e->>'event_type' || ' ' || coalesce(e->>'model', '') || ' ' || coalesce(e->>'instance_id', 'null')
		  FROM (SELECT substring(data FROM 'content:(.*)$')::jsonb AS e
		          FROM pg_logical_slot_get_changes('tap_slot', NULL, NULL)
		         WHERE data LIKE 'message: transactional: 1 prefix: activity_audit, %') s
		});
}

###########################################################################
# (a) CREATE EXTENSION without the preload
###########################################################################

my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;

my $stderr = psql_fails($plain, 'postgres', 'CREATE EXTENSION activity_audit;',
	'CREATE EXTENSION without shared_preload_libraries');
like($stderr, $preload_error,
	'CREATE EXTENSION without preload: error names shared_preload_libraries');
like($stderr, $preload_hint, 'CREATE EXTENSION without preload: hint says how to fix it');

# Nothing half-created: no extension, no schema, no functions.
is( $plain->safe_psql(
		'postgres', q{
		SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'activity_audit') || ' ' ||
		       (SELECT count(*) FROM pg_namespace WHERE nspname = 'activity_audit') || ' ' ||
		       (SELECT count(*) FROM pg_proc WHERE proname IN ('track', 'capture', '_check_preload'))
		}),
	'0 0 0',
	'CREATE EXTENSION without preload: no extension, schema or function left behind');

# LOADing the library by hand does not count as the preload either.
$stderr = psql_fails($plain, 'postgres',
	"LOAD 'activity_audit'; CREATE EXTENSION activity_audit;",
	'CREATE EXTENSION after LOAD');
like($stderr, $preload_error, 'CREATE EXTENSION after LOAD: still refused');

$plain->stop;

###########################################################################
# (b) an installed extension on a server restarted without the preload
###########################################################################

my $node = PostgreSQL::Test::Cluster->new('audited');
$node->init(allows_streaming => 'logical');
# full WAL format: slot_events() reads self-contained events
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'activity_audit'
wal_level = logical
audit.wal_format = full
});
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	SELECT 'init' FROM pg_create_logical_replication_slot('tap_slot', 'test_decoding');
	CREATE TABLE tracked_t (id int PRIMARY KEY, v text);
	CREATE TABLE plain_t (id int PRIMARY KEY, v text);
	SELECT activity_audit.track('tracked_t');
	INSERT INTO tracked_t VALUES (1, 'one');
	INSERT INTO plain_t VALUES (1, 'one');
	});

is(slot_events($node, 'postgres'), 'CREATE tracked_t 1',
	'with the preload: INSERT into a tracked table writes one event');

# Restart without the preload.
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'restarted without shared_preload_libraries');

$stderr = psql_fails($node, 'postgres', q{INSERT INTO tracked_t VALUES (2, 'two');},
	'INSERT into tracked table without preload');
like($stderr, $preload_error, 'INSERT without preload: error names shared_preload_libraries');
like($stderr, $preload_hint, 'INSERT without preload: hint says how to fix it');

$stderr = psql_fails($node, 'postgres', q{UPDATE tracked_t SET v = 'uno' WHERE id = 1;},
	'UPDATE of tracked table without preload');
like($stderr, $preload_error, 'UPDATE without preload: error names shared_preload_libraries');

$stderr = psql_fails($node, 'postgres', q{DELETE FROM tracked_t WHERE id = 1;},
	'DELETE from tracked table without preload');
like($stderr, $preload_error, 'DELETE without preload: error names shared_preload_libraries');

$stderr = psql_fails($node, 'postgres', q{TRUNCATE tracked_t;},
	'TRUNCATE of tracked table without preload');
like($stderr, $preload_error, 'TRUNCATE without preload: error names shared_preload_libraries');

# An explicit LOAD in the session does not make writes auditable either.
$stderr = psql_fails($node, 'postgres',
	q{LOAD 'activity_audit'; INSERT INTO tracked_t VALUES (3, 'three');},
	'INSERT after LOAD without preload');
like($stderr, $preload_error, 'INSERT after LOAD: still refused');

# Nothing was changed by the refused writes.
is($node->safe_psql('postgres', q{SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM tracked_t}),
	'1=one', 'refused writes left the tracked table unchanged');

$stderr = psql_fails($node, 'postgres', q{SELECT activity_audit.track('plain_t');},
	'track() without preload');
like($stderr, $preload_error, 'track() without preload: error names shared_preload_libraries');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'plain_t'::regclass AND NOT tgisinternal}),
	'0',
	'track() without preload installed no trigger');

# Untracked tables are not affected.
$node->safe_psql(
	'postgres', q{
	INSERT INTO plain_t VALUES (2, 'two');
	UPDATE plain_t SET v = 'uno' WHERE id = 1;
	DELETE FROM plain_t WHERE id = 2;
	});
is($node->safe_psql('postgres', q{SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM plain_t}),
	'1=uno', 'untracked table is still writable without the preload');

# No event reached the WAL while the library was missing.
is(slot_events($node, 'postgres'), '', 'no events were written without the preload');

# Preload restored: writes are audited again.
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'activity_audit'");
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO tracked_t VALUES (2, 'two');});
is(slot_events($node, 'postgres'), 'CREATE tracked_t 2',
	'preload restored: auditing resumes');

###########################################################################
# (d) audit.enabled and the reserved audit.* prefix
###########################################################################

$node->safe_psql(
	'postgres', q{
	CREATE ROLE regress_audit_user LOGIN;
	GRANT USAGE ON SCHEMA activity_audit TO regress_audit_user;
	GRANT SELECT, INSERT, UPDATE, DELETE ON tracked_t TO regress_audit_user;
	});

# A non-superuser cannot switch auditing off, with SET or set_config().
$stderr = psql_fails($node, 'postgres',
	q{SET ROLE regress_audit_user; SET audit.enabled = off;},
	'non-superuser SET audit.enabled = off');
like($stderr, qr/permission denied to set parameter "audit\.enabled"/,
	'non-superuser SET audit.enabled: permission denied names the parameter');

$stderr = psql_fails($node, 'postgres',
	q{SET ROLE regress_audit_user; SET LOCAL audit.enabled = off;},
	'non-superuser SET LOCAL audit.enabled = off');
like($stderr, qr/permission denied to set parameter "audit\.enabled"/,
	'non-superuser SET LOCAL audit.enabled: permission denied');

$stderr = psql_fails($node, 'postgres',
	q{SET ROLE regress_audit_user; SELECT set_config('audit.enabled', 'off', false);},
	'non-superuser set_config(audit.enabled)');
like($stderr, qr/permission denied to set parameter "audit\.enabled"/,
	'non-superuser set_config(audit.enabled): permission denied');

# The non-superuser's writes are audited (auditing is still on).
$node->safe_psql('postgres',
	q{SET ROLE regress_audit_user; INSERT INTO tracked_t VALUES (10, 'ten');});
is(slot_events($node, 'postgres'), 'CREATE tracked_t 10',
	'non-superuser write is audited');

# A superuser can switch it off for the session: no events.
my $out = $node->safe_psql(
	'postgres', q{
	SET audit.enabled = off;
	INSERT INTO tracked_t VALUES (11, 'eleven');
	UPDATE tracked_t SET v = 'once' WHERE id = 11;
	DELETE FROM tracked_t WHERE id = 10;
	SHOW audit.enabled;
	});
is($out, 'off', 'superuser can SET audit.enabled = off');
is(slot_events($node, 'postgres'), join("\n", ('AUDIT_SUPPRESSED tracked_t null') x 3),
	'audit.enabled = off: writes produce no row events, one AUDIT_SUPPRESSED per transaction');

# ... or for one transaction with SET LOCAL; the next transaction is audited.
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SET LOCAL audit.enabled = off;
	INSERT INTO tracked_t VALUES (12, 'twelve');
	COMMIT;
	INSERT INTO tracked_t VALUES (13, 'thirteen');
	});
is(slot_events($node, 'postgres'), "AUDIT_SUPPRESSED tracked_t null\nCREATE tracked_t 13",
	'SET LOCAL audit.enabled = off covers only its transaction');

# The writes made with auditing off did happen.
is($node->safe_psql('postgres', q{SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM tracked_t}),
	'1=one,2=two,11=once,12=twelve,13=thirteen',
	'writes with audit.enabled = off were applied');

# A superuser's default is on in a new session.
is($node->safe_psql('postgres', 'SHOW audit.enabled'), 'on', 'audit.enabled defaults to on');

# Unknown names under the reserved prefix are refused, for anyone.
$stderr = psql_fails($node, 'postgres', q{SET audit.nonexistent = 1;},
	'SET audit.nonexistent');
like($stderr, qr/invalid configuration parameter name "audit\.nonexistent"/,
	'SET audit.nonexistent: error names the parameter');
like($stderr, qr/"audit" is a reserved prefix/,
	'SET audit.nonexistent: detail says the prefix is reserved');

$stderr = psql_fails($node, 'postgres',
	q{SET ROLE regress_audit_user; SELECT set_config('audit.nonexistent', '1', false);},
	'set_config(audit.nonexistent) as non-superuser');
like($stderr, qr/invalid configuration parameter name "audit\.nonexistent"/,
	'set_config(audit.nonexistent): refused');

$node->stop;

done_testing();

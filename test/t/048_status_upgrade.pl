# 048_status_upgrade.pl: release 0.3's writer_status() through an upgrade.
#
# A database at 0.2 (CREATE EXTENSION ... VERSION '0.2') keeps working with
# the new library: writer_status() answers with 0.2's eleven columns until
# ALTER EXTENSION activity_audit UPDATE, which goes to 0.3 and gives SPEC
# section 5's seventeen columns, exactly as a fresh CREATE EXTENSION does
# (name, type and order; same privileges).  pg_dump of the upgraded
# database restores into a fresh one with the same definition.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest;

my $node = audit_node('status_upgrade');

my $spec_result =
  'TABLE(pid integer, read_lsn pg_lsn, delivered_lsn pg_lsn, lag_bytes bigint, '
  . 'events_delivered bigint, bytes_written bigint, current_file text, '
  . 'pending_xacts integer, spilled_bytes bigint, forged_rejected bigint, '
  . 'last_error text, last_seq bigint, last_hash text, retained_bytes bigint, '
  . 'oldest_xact xid8, oldest_xact_gid text, oldest_xact_age interval)';
my $definition = q{
	SELECT pg_get_function_result(p.oid) || ' ' || coalesce(p.proacl::text, 'default')
	  FROM pg_proc p WHERE p.oid = 'activity_audit.writer_status'::regproc};

$node->safe_psql('postgres', 'CREATE DATABASE old; CREATE DATABASE fresh');
$node->safe_psql('old', q{CREATE EXTENSION activity_audit VERSION '0.2'});
$node->safe_psql('fresh', q{CREATE EXTENSION activity_audit});

is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'activity_audit'}),
	'0.3', 'a fresh CREATE EXTENSION installs 0.3');
is($node->safe_psql('fresh', $definition), "$spec_result default",
	'0.3: writer_status() has the columns of SPEC section 5');

# 0.2's definition with the new library
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'activity_audit'}),
	'0.2', 'VERSION 0.2 installs 0.2');
is( $node->safe_psql(
		'old', q{SELECT pid IS NOT NULL AND last_error IS NULL FROM activity_audit.writer_status()}),
	't', '0.2: writer_status() still answers with the new library');
my ($ret, $out, $err) = $node->psql('old', q{SELECT last_seq FROM activity_audit.writer_status()});
like($err, qr/column "last_seq" does not exist/, '0.2: without the new columns');

$node->safe_psql('old', q{ALTER EXTENSION activity_audit UPDATE});
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'activity_audit'}),
	'0.3', 'ALTER EXTENSION UPDATE goes to 0.3');
is($node->safe_psql('old', $definition), $node->safe_psql('fresh', $definition),
	'upgraded: the same definition and privileges as a fresh install');
is( $node->safe_psql(
		'old', q{SELECT pid IS NOT NULL AND retained_bytes >= 0 AND oldest_xact IS NULL
		           FROM activity_audit.writer_status()}),
	't', 'upgraded: the new columns answer');

# dump and restore of the upgraded database
my $dump = $node->basedir . '/old.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('old'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'restore');
is($node->safe_psql('restored', $definition), "$spec_result default",
	'restored: the same writer_status()');

$node->stop;
done_testing();

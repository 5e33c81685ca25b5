# 055_wal_level_minimal.pl: a server with wal_level = minimal.
#
# The writer needs a replication slot, which wal_level = minimal does not
# allow: PostgreSQL refuses to start with one.  The writer used to create
# its slot anyway, so the next start of the server failed.
#  (1) Preloaded with wal_level = minimal from the start: CREATE EXTENSION
#      fails naming wal_level, with the fix in the hint; the writer reports
#      in the log and waits (no crash loop); no slot is made, so the server
#      restarts.
#  (2) A server that audited with wal_level = logical and is then started
#      with minimal: the start stops with our FATAL naming the slot, the
#      setting and what to do.  With the slot's directory removed as it
#      says, the server starts; the trigger, track() and log_event() fail
#      naming wal_level, writer_status().last_error says why nothing is
#      delivered, and still no slot is made.  Back to wal_level = logical,
#      delivery goes on.

use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

my $minimal = "wal_level = minimal\nmax_wal_senders = 0\n";
my $wal_error = qr/ERROR:  activity_audit cannot audit with wal_level = minimal/;
my $wal_hint = qr/HINT:  Set wal_level = logical \(or replica\) in postgresql\.conf and restart the server\./;

sub no_slot
{
	my ($node, $name) = @_;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
		'0', "$name: no replication slot");
	ok(!-e $node->data_dir . '/pg_replslot/activity_audit',
		"$name: no pg_replslot/activity_audit");
}

###########################################################################
# (1) wal_level = minimal from the start
###########################################################################
my $node = audit_node('wal_minimal', conf => $minimal);
my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION activity_audit');
isnt($ret, 0, '(1) CREATE EXTENSION fails');
like($err, $wal_error, '(1) the error names wal_level');
like($err, $wal_hint, '(1) the hint says what to set');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_extension WHERE extname = 'activity_audit'}),
	'0', '(1) the extension is not created');
my $warning = qr/WARNING:  activity_audit writer cannot create its replication slot: wal_level is minimal/;
ok(wait_log($node, $warning, 0, 30), '(1) the writer says in the log why it cannot work');
sleep(3);
my @said = slurp_file($node->logfile) =~ /$warning/g;
is(scalar @said, 1, '(1) and waits: said once in 3 s, no crash loop');
unlike(slurp_file($node->logfile), qr/activity_audit writer.*exited with exit code/,
	'(1) the writer did not exit');
no_slot($node, '(1)');
$node->restart;
is($node->safe_psql('postgres', 'SELECT 1'), '1', '(1) the server restarts');
$node->stop;

###########################################################################
# (2) a slot from wal_level = logical, then minimal
###########################################################################
$node = audit_node('wal_was_logical');
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY);
	SELECT activity_audit.track('t');
	INSERT INTO t VALUES (1);
});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', '(2) delivered with wal_level = logical');
$node->stop;

$node->append_conf('postgresql.conf', $minimal);
my $log_offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), '(2) with the slot and wal_level = minimal the server does not start');
my $log = slurp_file($node->logfile, $log_offset);
like($log,
	qr/FATAL:  activity_audit's replication slot "activity_audit" exists, but wal_level is minimal/,
	'(2) our FATAL names the slot and wal_level');
like($log,
	qr/HINT:  Set wal_level = logical \(or replica\) in postgresql\.conf and start the server again\. To give up auditing instead, .* remove the directory "pg_replslot\/activity_audit"/,
	'(2) its hint says what to do');

rmtree($node->data_dir . '/pg_replslot/activity_audit');
$log_offset = -s $node->logfile;
$node->start;
is($node->safe_psql('postgres', 'SELECT 1'), '1',
	'(2) with the slot directory removed the server starts');

($ret, $out, $err) = $node->psql('postgres', 'INSERT INTO t VALUES (2)');
isnt($ret, 0, '(2) a write to an audited table fails');
like($err, $wal_error, '(2) the trigger names wal_level');
like($err, $wal_hint, '(2) with the hint');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', '(2) the row is not written');
($ret, $out, $err) = $node->psql('postgres',
	q{CREATE TABLE u (id int PRIMARY KEY); SELECT activity_audit.track('u')});
like($err, $wal_error, '(2) track() names wal_level');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT activity_audit.log_event('app.x', 'X')});
like($err, $wal_error, '(2) log_event() names wal_level');

ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error = 'activity_audit writer cannot create its replication slot: wal_level is minimal'
		  FROM activity_audit.writer_status()}),
	'(2) writer_status().last_error says why nothing is delivered');
ok(wait_log($node, qr/HINT:  Set wal_level = logical \(or replica\) in postgresql\.conf and restart the server\./,
		$log_offset, 30),
	'(2) the writer\'s WARNING has the hint');
no_slot($node, '(2)');
$node->restart;
is($node->safe_psql('postgres', 'SELECT 1'), '1', '(2) the server restarts');

$node->append_conf('postgresql.conf', "wal_level = logical\n");
$node->restart;
$node->safe_psql('postgres', 'INSERT INTO t VALUES (3)');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', '(2) back to wal_level = logical, delivery goes on');
my $events = stream_ok($node, '(2) the stream is valid');
# a gap line may come between: the WAL of row 1 may be gone, with no slot
is_deeply([ map { $_->{instance_id} } grep { ($_->{event_type} // '') ne 'WAL_LOST' } @$events ],
	[ 1, 3 ], '(2) the rows 1 and 3, once each');

$node->stop;
done_testing();

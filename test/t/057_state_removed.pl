# 057_state_removed.pl: pg_activity_audit/stream_state removed while the
# stream's files stay in place.
#
# Without its state file the writer used to start a new chain at seq 1 in
# the same directory, beside the old one, without a word.  Now it refuses:
# last_error and a WARNING name the missing state file, a stream file and
# what to do, nothing is delivered (the WAL is kept), no file is started.
#  (1) The state file is put back: delivery resumes by itself, every event
#      exactly once, in order.
#  (2) The state file is removed again and the stream's files are moved
#      away, as the message says: a new stream starts at seq 1 holding the
#      events not yet delivered.

use strict;
use warnings;

use File::Copy qw(copy move);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

my $node = audit_node('state_removed');
my $dir = stream_dir($node);
my $state = $node->data_dir . '/pg_activity_audit/stream_state';
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT generate_series(1, 3);
});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'three events delivered');
my @files = stream_files($dir);
is(scalar @files, 1, 'one stream file');
(my $name = $files[0]) =~ s{.*/}{};
my $saved = PostgreSQL::Test::Utils::tempdir() . '/stream_state';
copy($state, $saved) or die "copy: $!";

sub ids
{
	my ($events) = @_;
	return [ map { $_->{instance_id} } @$events ];
}

###########################################################################
# (1) removed, the writer restarted; then put back
###########################################################################
unlink($state) or die "unlink $state: $!";
my $log_offset = -s $node->logfile;
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(1) flush() times out: no second stream is started');
my $said =
  qr/"pg_activity_audit\/stream_state" is missing but audit stream file "log\/\Q$name\E" exists: the writer does not start a second stream at seq 1 beside it; put "pg_activity_audit\/stream_state" back \(from a backup\), or move the stream's files out of "log" to start a new stream/;
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%is missing but audit stream file%'
		  FROM activity_audit.writer_status()}),
	'(1) last_error says the state file is missing');
like(writer_status($node)->{last_error} // '', $said,
	'(1) last_error names the state file, a stream file and what to do');
ok(wait_log($node, qr/WARNING:  activity_audit writer cannot deliver: $said/, $log_offset, 30),
	'(1) and so does a WARNING');
is_deeply([ stream_files($dir) ], \@files, '(1) no file was started');
ok(!-e $state, '(1) no state file was written');

copy($saved, $state) or die "copy back: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(1) with the state file back, delivery resumes by itself');
is(writer_status($node)->{last_error}, undef, '(1) last_error is cleared');
my $events = stream_ok($node, '(1) stream valid (seq, chain)');
is_deeply(ids($events), [ 1 .. 4 ], '(1) every committed event once, in order');

###########################################################################
# (2) removed again, the files moved away: a new stream
###########################################################################
# the slot past events 1..4 first (it is saved at most once a second), so
# that what the new stream must hold is exactly what comes next
my $lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT restart_lsn >= '$lsn'::pg_lsn
		  FROM pg_replication_slots WHERE slot_name = 'activity_audit'}),
	'(2) the slot has moved past the delivered events');
unlink($state) or die "unlink $state: $!";
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (5)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(2) refused again');
my $archive = PostgreSQL::Test::Utils::tempdir() . '/archive';
mkdir($archive) or die "mkdir: $!";
move($_, $archive) or die "move $_: $!" foreach stream_files($dir);
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(2) with the files moved away, delivery resumes');
$events = stream_ok($node, '(2) the new stream is valid');
is($events->[0]{seq}, 1, '(2) it starts at seq 1');
is_deeply(ids($events), [5], '(2) it holds the undelivered event');

$node->stop;
done_testing();

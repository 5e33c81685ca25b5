# 017_removed_file.pl: the current stream file is removed while the writer
# has it open.
#
# Appending to a removed file would lose every later event unseen.  The
# writer notices at its next sync, before its position moves: flush() times
# out, writer_status().last_error and a server-log WARNING say that the file
# was removed and what to do, and the WAL is kept.
#  (1) The file is put back (from a copy taken before): delivery resumes by
#      itself and the stream holds every committed event exactly once, in
#      order, chain intact; the events that went into the removed file are
#      delivered again from the WAL.
#  (2) The file is removed again and this time the stream is started anew,
#      as the message says: the other files moved away and
#      pg_activity_audit/stream_state removed.  The writer starts a new
#      stream at seq 1 holding the events not yet delivered.
#  (3) The current file is removed when the next commit would start a new
#      file (rotation): noticed the same way, no new file is started; put
#      back, delivery resumes exactly once.

use strict;
use warnings;

use File::Copy qw(copy move);
use Time::HiRes qw(sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

my $node = audit_node('removed_file');
my $dir = stream_dir($node);
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, note text);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT g, 'before' FROM generate_series(1, 3) g;
});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'three events delivered');
my @files = stream_files($dir);
is(scalar @files, 1, 'one stream file');
my $file = $files[0];
my $saved = PostgreSQL::Test::Utils::tempdir() . '/saved.jsonl';
copy($file, $saved) or die "copy: $!";

# the ids of the stream's events, in stream order
sub ids
{
	my ($events) = @_;
	return [ map { $_->{instance_id} } @$events ];
}

###########################################################################
# (1) removed, then put back
###########################################################################
unlink($file) or die "unlink $file: $!";
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'after removal'), (5, 'after removal')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(1) flush() times out while the current file is removed');
ok(wait_log($node, qr/was removed while the writer was appending to it/, $log_offset, 30),
	'(1) the server log says the file was removed');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%does not exist: put it back%'
		  FROM activity_audit.writer_status()}),
	'(1) last_error names the missing file and what to do');
ok(wait_log($node, qr/WARNING: .*named in "pg_activity_audit\/stream_state" does not exist/,
		$log_offset, 30),
	'(1) WARNING in the server log');
ok(!-e $file, '(1) the writer did not create the file again by itself');

copy($saved, $file) or die "copy back: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(1) once the file is back, delivery resumes by itself');
is(writer_status($node)->{last_error}, undef, '(1) last_error is cleared');
my $events = stream_ok($node, '(1) stream valid (seq, chain)');
is_deeply(ids($events), [ 1 .. 5 ], '(1) every committed event once, in order');

###########################################################################
# (2) removed again; a new stream is started
###########################################################################
# the slot past events 1..5 first (it is saved at most once a second), so
# that what the new stream must hold is exactly what comes next
my $lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT restart_lsn >= '$lsn'::pg_lsn
		  FROM pg_replication_slots WHERE slot_name = 'activity_audit'}),
	'(2) the slot has moved past the delivered events');
my $archive = PostgreSQL::Test::Utils::tempdir() . '/archive';
mkdir($archive) or die "mkdir: $!";
unlink($file) or die "unlink $file: $!";
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (6, 'new stream')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(2) flush() times out again');
ok(wait_log($node, qr/WARNING: .*does not exist/, $log_offset, 30),
	'(2) WARNING in the server log');
move($_, $archive) or die "move $_: $!" foreach stream_files($dir);
unlink($node->data_dir . '/pg_activity_audit/stream_state')
  or die "unlink stream_state: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(2) with the state file removed, delivery resumes');
$events = stream_ok($node, '(2) the new stream is valid');
is($events->[0]{seq}, 1, '(2) it starts at seq 1');
is_deeply(ids($events), [6], '(2) it holds the undelivered event');

###########################################################################
# (3) removed when the next commit starts a new file: noticed as well
###########################################################################
$node->safe_psql(
	'postgres', q{
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	INSERT INTO t VALUES (7, repeat('x', 2000));
});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', '(3) the current file is past the rotation size');
@files = stream_files($dir);
is(scalar @files, 1, '(3) still one file');
$file = $files[0];
copy($file, $saved) or die "copy: $!";
unlink($file) or die "unlink $file: $!";
sleep(1.1);    # file names have one-second resolution
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (8, 'rotated')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(3) flush() times out: the file it would leave is gone');
ok(wait_log($node, qr/was removed while the writer was appending to it/, $log_offset, 30),
	'(3) the server log says the file was removed');
is(scalar(stream_files($dir)), 0, '(3) no new file was started');
copy($saved, $file) or die "copy back: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(3) once the file is back, delivery resumes');
$events = stream_ok($node, '(3) stream valid');
is_deeply(ids($events), [ 6, 7, 8 ], '(3) every event once, in order');
is(scalar(stream_files($dir)), 2, '(3) the last event is in a new file');

$node->stop;
done_testing();

# 056_moved_file.pl: the current stream file is moved away (mv within the
# file system) while the writer has it open.
#
# The writer used to look only at the open file's link count, which mv
# leaves at 1: it went on appending to the moved file, flush() said true,
# and the file at the stream's path lacked those events; after a restart
# their seq was given to later events.  Now it compares the open file with
# the file at its path before each write and after each fsync, and treats
# a difference as the removed file (017): flush() times out, last_error and
# a WARNING say what happened and what to do, the WAL is kept.
#  (1) Moved away: nothing more goes into the moved file; moved back,
#      delivery resumes by itself, every event exactly once, in order.
#  (2) Moved away and a copy put at its path (a replaced file): the writer
#      takes up the file at the path and writes the events the moved file
#      would have swallowed into it, from the WAL; after a restart seq goes
#      on, no event missing, none twice.
#  (3) Moved away and an empty file put at its path: the writer does not
#      take it up (its seq would start again); with the original moved
#      back, delivery resumes exactly once.

use strict;
use warnings;

use File::Copy qw(copy move);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log file_lines);
use StreamCheck;

my $node = audit_node('moved_file');
my $dir = stream_dir($node);
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
my $file = $files[0];
(my $name = $file) =~ s{.*/}{};    # the writer names it log/<name>
# the same file system as the stream's directory, not a stream file name
my $away = $node->data_dir . '/moved-away';

sub ids
{
	my ($events) = @_;
	return [ map { $_->{instance_id} } @$events ];
}

###########################################################################
# (1) moved away, then moved back
###########################################################################
move($file, $away) or die "mv: $!";
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4), (5)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(1) flush() times out while the current file is moved away');
ok( wait_log(
		$node, qr/"log\/\Q$name\E" was moved away or replaced while the writer was appending to it/,
		$log_offset, 30),
	'(1) the server log names the moved file');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%does not exist: put it back%'
		  FROM activity_audit.writer_status()}),
	'(1) last_error names the missing file and what to do');
is(scalar(file_lines($away)), 3, '(1) nothing was appended to the moved file');
ok(!-e $file, '(1) the writer did not create the file again by itself');

move($away, $file) or die "mv back: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(1) once the file is back, delivery resumes by itself');
is(writer_status($node)->{last_error}, undef, '(1) last_error is cleared');
my $events = stream_ok($node, '(1) stream valid (seq, chain)');
is_deeply(ids($events), [ 1 .. 5 ], '(1) every committed event once, in order');

###########################################################################
# (2) moved away and a copy put in its place
###########################################################################
move($file, $away) or die "mv: $!";
copy($away, $file) or die "cp: $!";
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (6), (7)});
ok( wait_log(
		$node, qr/"log\/\Q$name\E" was moved away or replaced while the writer was appending to it/,
		$log_offset, 30),
	'(2) the server log says the file was replaced');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(2) delivery goes on in the file at the path');
is(scalar(file_lines($away)), 5, '(2) nothing was appended to the moved file');
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (8)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(2) delivered after a restart');
$events = stream_ok($node, '(2) stream valid (seq, chain)');
is_deeply(ids($events), [ 1 .. 8 ], '(2) every committed event once, in order');
is_deeply([ map { $_->{seq} } @$events ], [ 1 .. 8 ], '(2) seq 1 to 8');

###########################################################################
# (3) moved away and an empty file put in its place
###########################################################################
unlink($away) or die "unlink: $!";
move($file, $away) or die "mv: $!";
open(my $fh, '>', $file) or die "create: $!";
close($fh);
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (9)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', '(3) flush() times out');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT last_error LIKE '%"log/$name" ends at seq 0, but the stream held seq 8 already: the file was replaced or cut; put the original file back%'
		  FROM activity_audit.writer_status()}),
	'(3) last_error says the file at the path ends before the stream');
ok(wait_log($node, qr/WARNING: .*ends at seq 0, but the stream held seq 8 already/, $log_offset, 30),
	'(3) and so does a WARNING');
is(-s $file, 0, '(3) nothing was written into the empty file');
move($away, $file) or die "mv back: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', '(3) with the original back, delivery resumes');
$events = stream_ok($node, '(3) stream valid (seq, chain)');
is_deeply(ids($events), [ 1 .. 9 ], '(3) every committed event once, in order');

$node->stop;
done_testing();

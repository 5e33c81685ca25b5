# 012_sink_errors.pl: the file sink cannot be written, then can again.
#
# With audit.rotation_size = '1kB' every new transaction needs a new file;
# taking the write permission away from the log directory (chmod 0500) makes
# that impossible.  Events committed meanwhile must not be lost: flush()
# times out, writer_status().last_error names the problem, the server log
# has a WARNING, the writer's replication slot keeps the WAL from before the
# first undelivered event, and no file is touched.  Once the permission is
# back, delivery resumes by itself: flush() succeeds, last_error is null and
# the stream holds exactly the committed events, once each, with seq and the
# hash chain intact.  The same once more with audit.log_directory moved to a
# directory without write permission: the chain then runs on into it.
# Last, while the file sink fails a reload takes "file" out of audit.sink:
# the waiting event goes to the server log and later ones too, the files
# are left alone; with "file" back the chain runs on with the next event.
#
# The test must run as the server's (non-root) OS user: root ignores file
# permissions.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wal_events stream_texts wait_log file_lines);
use StreamCheck;

plan skip_all => 'root ignores file permissions' if $> == 0;

my $node = audit_node('sink_errors');
my $dir = stream_dir($node);

$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	});
$node->poll_query_until('postgres', 'SHOW audit.rotation_size', '1kB')
  or die 'audit.rotation_size not reloaded';
usleep(500_000);    # the writer reloads on the same SIGHUP



# name => size of every file of the stream directory
sub dir_state
{
	return join(',', map { (my $b = $_) =~ s{.*/}{}; "$b=" . (-s $_) }
		  stream_files($dir));
}


sub status
{
	my ($col) = @_;
	return $node->safe_psql('postgres',
		"SELECT $col FROM activity_audit.writer_status()");
}

###########################################################################
# Before: three events in a file already past the rotation size
###########################################################################
$node->safe_psql(
	'postgres', q{
	INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 3) g;
	});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'first events delivered');
is(status('events_delivered'), '3', 'three events delivered');
my @files = stream_files($dir);
is(scalar @files, 1, 'one file');
cmp_ok(-s $files[0], '>', 1024, 'the file is past the rotation size');
ok(-d $dir, 'stream directory exists');

###########################################################################
# The directory becomes unwritable
###########################################################################
chmod(0500, $dir) or die "chmod $dir: $!";
# the writer keeps a file past the size while a new name would be the same
# (names have second resolution): let the second pass, so the next commit
# needs a new file
usleep(1_100_000);
my $state_before = dir_state();
my $log_offset = -s $node->logfile;

# where the WAL stood before the first event that cannot be delivered
my $lsn0 = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');

$node->safe_psql(
	'postgres', q{
	INSERT INTO t VALUES (10, 'during');
	BEGIN;
	UPDATE t SET pad = 'changed' WHERE id = 1;
	DELETE FROM t WHERE id = 2;
	COMMIT;
	});

my $t0 = time;
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('3s')}),
	'f', q{flush('3s') returns false while the directory is unwritable});
cmp_ok(time - $t0, '>=', 2.5, 'flush waited for its timeout');

my $err = status('last_error');
isnt($err, '', 'writer_status().last_error is set');
like($err, qr/Permission denied/i, "last_error names the problem: $err");
like($err, qr{\Q$dir\E|/log\b|\blog/}, 'last_error names the directory or file');
is(status('events_delivered'), '3', 'nothing more is counted as delivered');

ok(wait_log($node, qr/WARNING: .*Permission denied/, $log_offset, 30),
	'the server log has a WARNING about it');

# the writer's slot keeps the WAL from before the first undelivered event
my $slot_ok = qq{
	SELECT restart_lsn <= '$lsn0'::pg_lsn
	  FROM pg_replication_slots WHERE slot_name = 'activity_audit'};
is($node->safe_psql('postgres', $slot_ok), 't',
	'slot activity_audit keeps restart_lsn before the undelivered events');

# more commits and WAL switches while the writer waits: nothing is released
$node->safe_psql(
	'postgres', q{
	INSERT INTO t VALUES (11, 'during 2');
	SELECT pg_switch_wal();
	INSERT INTO t VALUES (12, 'during 3');
	SELECT pg_switch_wal();
	CHECKPOINT;
	});
usleep(1_500_000);
is($node->safe_psql('postgres', $slot_ok), 't',
	'restart_lsn still before the undelivered events after more commits');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_ls_waldir()
		 WHERE name = (SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots
		                WHERE slot_name = 'activity_audit')}),
	'1',
	'the WAL segment of restart_lsn is kept through a checkpoint');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('1s')}),
	'f', 'flush still false');
isnt(status('last_error'), '', 'last_error still set');
is(dir_state(), $state_before, 'no file was created or changed meanwhile');

###########################################################################
# The directory is writable again: delivery resumes by itself
###########################################################################
chmod(0700, $dir) or die "chmod $dir: $!";

is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'flush returns true once the directory is writable');
is(status('last_error IS NULL'), 't', 'last_error is null again');

my @wal = wal_events($node);
is(scalar @wal, 8, 'eight events committed');
is(status('events_delivered'), '8', 'eight events delivered');
my $events = stream_ok($node, 'stream valid (seq 1..8 once each, chain intact)');
is(scalar @$events, 8, 'eight events in the stream');
is_deeply([ map { $_->{seq} } @$events ], [ 1 .. 8 ], 'seq 1..8');
is_deeply([ stream_texts($dir) ], \@wal,
	'delivered events are the committed events, in commit order, once each');

ok( $node->poll_query_until(
		'postgres', qq{
		SELECT restart_lsn > '$lsn0'::pg_lsn
		  FROM pg_replication_slots WHERE slot_name = 'activity_audit'}),
	'the slot moves on once delivered');

# and it goes on working
$node->safe_psql('postgres', q{INSERT INTO t VALUES (13, 'after')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'later events delivered');
$events = stream_ok($node, 'stream valid after a later event');
is(scalar @$events, 9, 'nine events in the stream');
is_deeply([ stream_texts($dir) ], [ wal_events($node) ], 'still exactly the committed events');

###########################################################################
# Again with audit.log_directory moved to an unwritable directory
###########################################################################
my @old_lines = map { file_lines($_) } stream_files($dir);
my $ro = PostgreSQL::Test::Utils::tempdir() . '/audit_ro';
mkdir($ro) or die "mkdir $ro: $!";
chmod(0500, $ro) or die "chmod $ro: $!";

$node->safe_psql('postgres',
	"ALTER SYSTEM SET audit.log_directory = '$ro'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', 'SHOW audit.log_directory', $ro)
  or die 'audit.log_directory not reloaded';
usleep(500_000);
$log_offset = -s $node->logfile;
$lsn0 = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (14, 'moved')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('2s')}),
	'f', 'unwritable new directory: flush returns false');
$err = status('last_error');
like($err, qr/Permission denied/i, "unwritable new directory: last_error: $err");
like($err, qr/\Q$ro\E/, 'unwritable new directory: last_error names it');
ok(wait_log($node, qr/WARNING: .*Permission denied/, $log_offset, 30),
	'unwritable new directory: WARNING in the server log');
$slot_ok = qq{
	SELECT restart_lsn <= '$lsn0'::pg_lsn
	  FROM pg_replication_slots WHERE slot_name = 'activity_audit'};
usleep(1_200_000);    # the slot is saved at most once a second
is($node->safe_psql('postgres', $slot_ok), 't',
	'unwritable new directory: restart_lsn kept before the undelivered event');
is(scalar(stream_files($ro)), 0, 'unwritable new directory: no file in it');

chmod(0700, $ro) or die "chmod $ro: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'new directory writable: flush returns true');
is(status('last_error IS NULL'), 't', 'new directory writable: last_error is null');
my @new_files = stream_files($ro);
is(scalar @new_files, 1, 'new directory: one file');
my @new_lines = map { file_lines($_) } @new_files;
is(scalar @new_lines, 1, 'new directory: one event');
my @all = eval { validate_lines([ @old_lines, @new_lines ], 'old and new directory') };
is($@, '', 'the chain runs on from the old directory into the new one');
is(scalar @all, 10, 'ten events in all');
@wal = wal_events($node);
(my $last = $new_lines[0]) =~ s/\n\z//;
$last =~
  s/,"seq":[0-9]+,"lsn":"[0-9A-F]+\/[0-9A-F]+","committed_at":"[^"]+","prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\z/}/;
is(scalar @wal, 10, 'ten events committed');
is($last, $wal[-1], 'the new directory holds the last committed event');

###########################################################################
# The file sink fails and a reload takes "file" out of audit.sink: the
# waiting event goes to the server log and delivery goes on without files;
# putting "file" back continues the chain
###########################################################################
# first the current file past the rotation size, so the next commit needs
# a file the writer cannot create
$node->safe_psql('postgres', q{INSERT INTO t VALUES (18, repeat('x', 1000))});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'sink switch: a large event fills the current file');
my @lines_before = map { file_lines($_) } stream_files($ro);
chmod(0500, $ro) or die "chmod $ro: $!";
usleep(1_100_000);    # the next commit needs a new file
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (15, 'log only 1')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('2s')}),
	'f', 'sink switch: flush returns false while the file sink fails');
ok(wait_log($node, qr/WARNING: .*Permission denied/, $log_offset, 30),
	'sink switch: WARNING in the server log');

$node->safe_psql('postgres',
	"ALTER SYSTEM SET audit.sink = 'log'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', 'SHOW audit.sink', 'log')
  or die 'audit.sink not reloaded';
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', q{sink switch: with audit.sink = 'log' the waiting event is delivered});
is(status('last_error IS NULL'), 't', 'sink switch: last_error is null');
is(status('current_file IS NULL'), 't', 'sink switch: no current file');
ok(wait_log($node, qr/AUDIT: \{.*"instance_id":"15"/, $log_offset, 30),
	'sink switch: the waiting event is in the server log');
ok(wait_log($node, qr/LOG: .*no longer writes the audit stream files/, $log_offset, 30),
	'sink switch: the server log says why the file is no longer written');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (16, 'log only 2')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'sink switch: later events are delivered to the log');
ok(wait_log($node, qr/AUDIT: \{.*"instance_id":"16"/, $log_offset, 30),
	'sink switch: the later event is in the server log');

chmod(0700, $ro) or die "chmod $ro: $!";
$node->safe_psql('postgres',
	"ALTER SYSTEM SET audit.sink = 'file'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', 'SHOW audit.sink', 'file')
  or die 'audit.sink not reloaded';
$node->safe_psql('postgres', q{INSERT INTO t VALUES (17, 'file again')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'sink switch: "file" back in audit.sink, flush returns true');
is(status('last_error IS NULL'), 't', 'sink switch: no error');
my @lines_after = map { file_lines($_) } stream_files($ro);
is(scalar @lines_after, scalar(@lines_before) + 1,
	'sink switch: the files gained one event (the two log-only events are not in them)');
@all = eval { validate_lines([ @old_lines, @lines_after ], 'after the sink switch') };
is($@, '', 'sink switch: the chain runs on');
like($lines_after[-1], qr/"instance_id":"17"/, 'sink switch: the new event is the last line');

$node->stop;
done_testing();

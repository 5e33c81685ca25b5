# 026_fsync_failure.pl: a failed fsync() of an audit stream file.
#
# After a failed fsync, Linux may have marked the file's dirty pages clean
# without writing them: reads still return the data, but it may never reach
# the disk, and the next fsync reports success.  PostgreSQL PANICs here
# (fd.c, data_sync_elevel).  The writer must not trust those pages: it cuts
# the file back (ftruncate + fsync) to its size at the last successful
# fsync, restarts, and writes what followed again, as new pages, from the
# WAL (its slot never moved past what was synced).  If the cut itself fails
# it refuses to go on (and says so) until the cut succeeds.
#
# The failure and the kernel's data loss are emulated:
#
#  - test/unit/fsync_fail_shim.c, compiled here into an LD_PRELOAD library
#    that the server is started with (fsync = on), makes fsync() and
#    fdatasync() of the stream's files (paths ending in ".jsonl", resolved
#    through /proc/self/fd) fail with EIO, without syncing, while a control
#    file exists (holding "once": only the next one fails and the shim
#    removes the file).  It logs every fsync of a stream file with the
#    file's size at the call and whether it failed, and every successful
#    ftruncate of one with its length.
#  - From that log the test computes what the emulated kernel lost: at each
#    failed fsync of a file, the bytes [S, E), where S is the file's size at
#    its last successful fsync before (0 if there was none) and E its size
#    at the failed call; a later ftruncate of that file to a length L
#    shrinks the region to [S, min(E, L)) -- bytes at or past L were cut off,
#    and whatever is written there later is written as new pages.  Later
#    successful fsyncs do not shrink a region: the kernel does not write
#    pages again once it has marked them clean.
#  - After the writer has recovered and delivered more, the test stops the
#    server with an immediate shutdown (a crash: nothing is synced or cleaned
#    up on the way), overwrites every remaining region that is still inside
#    its file with NUL bytes -- that is the emulated data loss, the pages as
#    the disk holds them -- and starts the server again.
#
# Then the stream must hold every committed event (all of them are in the
# WAL, read back through a test_decoding slot) exactly once, in commit
# order, seq 1..N without gaps, the hash chain intact: StreamCheck,
# activity_audit.verify() and activity_audit_verify all agree.  A writer
# that trusts the pages of a failed fsync leaves NULs (lost lines) in the
# middle of the stream, behind lines written after them.
#
#  (1) One fsync fails: the writer cuts the file back to the size of its
#      last successful fsync, restarts and delivers everything once.
#  (2) fsync keeps failing, so the cut cannot be made durable either: flush()
#      times out, last_error and a WARNING say why, the file is cut back, and
#      the writer waits (it does not restart and trust the file); once fsync
#      works again, it goes on by itself.
#  (3) The fsync of the file a rotation leaves fails (start_file): the same
#      rule; the rotation is done again after the restart.

use strict;
use warnings;

use Cwd qw(realpath);
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep sleep);

use lib $FindBin::RealBin;
use AuditTest qw(writer_status wal_events stream_texts wait_log);
use StreamCheck;

plan skip_all => 'needs /proc/self/fd (Linux)' unless -d '/proc/self/fd';

my $top = "$FindBin::RealBin/../..";
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $shim = "$tmp/fsync_fail_shim.so";
my $ctl = "$tmp/fail_fsync";
my $shim_log = "$tmp/shim.log";
my $cc = $ENV{CC} // 'cc';

{
	my @cmd = ($cc, '-shared', '-fPIC', '-O2', '-Wall', '-o', $shim,
		"$top/test/unit/fsync_fail_shim.c", '-ldl');
	ok(system(@cmd) == 0, 'the fsync shim compiles')
	  or BAIL_OUT("cannot compile: @cmd");
}

my $node = PostgreSQL::Test::Cluster->new('fsync_failure');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'activity_audit'
wal_level = logical
max_replication_slots = 4
fsync = on
});
my $dir = stream_dir($node);

# Start the server with the shim preloaded.
sub start_node
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{AA_SHIM_CONTROL} = $ctl;
	local $ENV{AA_SHIM_LOG} = $shim_log;
	$node->start;
}

sub set_control
{
	my ($content) = @_;
	open(my $fh, '>', $ctl) or die "cannot write $ctl: $!";
	print $fh $content;
	close($fh);
}

sub query
{
	return $node->safe_psql('postgres', $_[0]);
}

sub flush
{
	my ($timeout) = @_;
	return query("SELECT activity_audit.flush('$timeout')");
}

# Commit rows $from..$to, $per rows per transaction, in one session.
sub commit_rows
{
	my ($phase, $from, $to, $per, $pad) = @_;
	my $sql = '';
	for (my $i = $from; $i <= $to; $i += $per)
	{
		my $hi = $i + $per - 1 > $to ? $to : $i + $per - 1;
		$sql .= "INSERT INTO t SELECT g, '$phase', repeat('x', " . ($pad // 50)
		  . ") FROM generate_series($i, $hi) g;\n";
	}
	query($sql);
}

# The shim's log: ([op, size, path], ...) with op 'ok', 'fail' or 'truncate'.
sub shim_events
{
	my @ev;
	return () unless -e $shim_log;
	open(my $fh, '<', $shim_log) or die "cannot read $shim_log: $!";
	while (my $l = <$fh>)
	{
		chomp $l;
		if ($l =~ /^fsync (ok|fail) (-?\d+) (.*)\z/)
		{
			push @ev, [ $1, $2, $3 ];
		}
		elsif ($l =~ /^ftruncate (\d+) (.*)\z/)
		{
			push @ev, [ 'truncate', $1, $2 ];
		}
		else
		{
			die "unexpected shim log line: $l";
		}
	}
	close($fh);
	return @ev;
}

# What the emulated kernel lost (see the header): [path, from, to] for
# each failed fsync, shrunk by later truncations; empty regions omitted.
sub lost_regions
{
	my (%synced, @regions);
	foreach my $e (shim_events())
	{
		my ($op, $size, $path) = @$e;
		if ($op eq 'ok')
		{
			$synced{$path} = $size;
		}
		elsif ($op eq 'fail')
		{
			push @regions, [ $path, $synced{$path} // 0, $size ];
		}
		else
		{
			foreach my $r (grep { $_->[0] eq $path } @regions)
			{
				$r->[2] = $size if $size < $r->[2];
			}
		}
	}
	return grep { $_->[2] > $_->[1] } @regions;
}

# The size of a file at its last successful fsync (per the shim's log).
sub last_synced_size
{
	my ($path) = @_;
	my $size;
	foreach my $e (shim_events())
	{
		$size = $e->[1] if $e->[0] eq 'ok' && $e->[2] eq $path;
	}
	return $size;
}

# Crash, lose what the emulated kernel lost, start again.
sub crash_and_lose
{
	my ($what) = @_;
	$node->stop('immediate');
	my @lost = lost_regions();
	foreach my $r (@lost)
	{
		my ($path, $from, $to) = @$r;
		next unless -e $path;
		my $size = -s $path;
		$to = $size if $to > $size;
		next if $to <= $from;
		open(my $fh, '+<:raw', $path) or die "cannot open $path: $!";
		seek($fh, $from, 0) or die "seek: $!";
		print $fh "\0" x ($to - $from);
		close($fh) or die "close: $!";
		note("$what: zeroed bytes [$from, $to) of $path");
	}
	is(scalar(@lost), 0,
		"$what: every region whose fsync failed was cut off and written again")
	  or diag(join("\n", map { "lost: [$_->[1], $_->[2]) of $_->[0]" } @lost));
	start_node();
}

# A line for a diagnostic: NULs shown as \0, at most 160 characters.
sub shorten
{
	my ($t) = @_;
	return '(none)' unless defined $t;
	$t =~ s/\0+/sprintf('\\0 x %d', length($&))/ge;
	return length($t) > 160 ? substr($t, 0, 160) . '...' : $t;
}

# Everything committed is in the stream, once, in order; all three
# verifiers agree that the chain is intact.
sub check_delivered
{
	my ($what) = @_;
	is(flush('60s'), 't', "$what: flush() returns true");
	my $events = stream_ok($node, "$what: stream valid (seq 1..N, chain intact)");
	my @wal = wal_events($node);
	is(scalar(@$events), scalar(@wal),
		"$what: as many events in the stream as committed (" . scalar(@wal) . ')');
	my @texts = stream_texts($dir);
	my ($k) = grep { ($texts[$_] // '') ne ($wal[$_] // '') }
	  0 .. ($#texts > $#wal ? $#texts : $#wal);
	ok(!defined $k,
		"$what: the stream holds the committed events, once each, in commit order")
	  or diag("event $k differs:\n  stream: " . shorten($texts[$k])
		  . "\n  WAL:    " . shorten($wal[$k]));
	is(query('SELECT ok FROM activity_audit.verify()'), 't', "$what: verify() ok");
	my $out = `activity_audit_verify '$dir' 2>&1`;
	is($? >> 8, 0, "$what: activity_audit_verify exits 0") or diag($out);
}

start_node();
query(
	q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, phase text, pad text);
	SELECT activity_audit.track('t');
});
commit_rows('before', 1, 20, 5);
is(flush('30s'), 't', 'first events delivered');

###########################################################################
# (1) one failed fsync
###########################################################################
my $log_offset = -s $node->logfile;
my $pid = writer_status($node)->{pid};
set_control('once');
commit_rows('one', 101, 150, 10);
ok(wait_log($node, qr/WARNING: .*could not fsync audit stream file .*Input\/output error/,
		$log_offset, 30),
	'(1) the failed fsync is reported in the server log');
ok(!-e $ctl, '(1) the shim failed one fsync');
ok(wait_log($node, qr/cut back to the \d+ bytes of its last successful fsync/, $log_offset, 30),
	'(1) the server log says the file was cut back');
is(flush('60s'), 't', '(1) the events are delivered after the restart');
isnt(writer_status($node)->{pid}, $pid, '(1) the writer restarted to read the WAL again');
commit_rows('one', 151, 200, 10);
check_delivered('(1) before the crash');
crash_and_lose('(1)');
check_delivered('(1) after the crash');

###########################################################################
# (2) fsync keeps failing: the cut cannot be made durable
###########################################################################
$log_offset = -s $node->logfile;
my $file = writer_status($node)->{current_file};
$file = realpath($file =~ m{^/} ? $file : $node->data_dir . "/$file");
set_control('always');
commit_rows('two', 201, 250, 10);
ok(wait_log($node, qr/WARNING: .*could not fsync audit stream file .*Input\/output error/,
		$log_offset, 30),
	'(2) the failed fsync is reported in the server log');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%could not fsync audit stream file%'
		   AND last_error LIKE '%could not be cut off%'
		  FROM activity_audit.writer_status()}),
	'(2) last_error says the unsynced lines could not be cut off')
  or diag('last_error: ' . (writer_status($node)->{last_error} // 'null'));
$pid = writer_status($node)->{pid};
is(flush('3s'), 'f', '(2) flush() times out while the cut cannot be made durable');
is(writer_status($node)->{pid}, $pid,
	'(2) the writer does not restart (and trust the file) meanwhile');
is(-s $file, last_synced_size($file),
	'(2) the file is cut back to its size at the last successful fsync');
unlink($ctl) or die "unlink $ctl: $!";
is(flush('60s'), 't', '(2) once fsync works again, delivery resumes by itself');
ok($node->poll_query_until('postgres',
		'SELECT last_error IS NULL FROM activity_audit.writer_status()'),
	'(2) last_error is cleared once delivery has moved on');
commit_rows('two', 251, 300, 10);
check_delivered('(2) before the crash');
crash_and_lose('(2)');
check_delivered('(2) after the crash');

###########################################################################
# (3) the fsync of the file a rotation leaves fails
###########################################################################
# With a small rotation size, the next commit starts a new file, which one
# small event leaves below the size.  Then, with the writer stopped, a big
# event and, a second later (file names have one-second resolution), one
# more: the writer reads both in one pass, appends the first to the current
# file and, at the second, rotates: its first fsync is the one of the file
# it leaves, dirty with the first event.
query(q{ALTER SYSTEM SET audit.rotation_size = '1kB'; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', 'SHOW audit.rotation_size', '1kB')
  or die 'audit.rotation_size not reloaded';
usleep(500_000);
sleep(1.1);
commit_rows('three', 301, 301, 1);
is(flush('30s'), 't', '(3) a small event starts a new file');
my @files = stream_files($dir);
my $left = realpath($files[-1]);
cmp_ok(-s $left, '<', 1024, '(3) the new file is below the rotation size');
$pid = writer_status($node)->{pid};
kill('STOP', $pid) or die "cannot stop the writer: $!";
commit_rows('three', 302, 302, 1, 2000);
sleep(1.1);
commit_rows('three', 303, 303, 1);
$log_offset = -s $node->logfile;
my $shim_lines = scalar(shim_events());
set_control('once');
kill('CONT', $pid) or die "cannot continue the writer: $!";
ok(wait_log($node, qr/WARNING: .*could not fsync audit stream file .*Input\/output error/,
		$log_offset, 30),
	'(3) the failed fsync is reported in the server log');
my @fails = grep { $_->[0] eq 'fail' } (shim_events())[ $shim_lines .. scalar(shim_events()) - 1 ];
is(scalar(@fails), 1, '(3) one fsync failed');
is($fails[0][2], $left, '(3) it was the fsync of the file the rotation leaves')
  if @fails;
is(flush('60s'), 't', '(3) the events are delivered after the restart');
cmp_ok(scalar(stream_files($dir)), '>', scalar(@files), '(3) the rotation was done again');
commit_rows('three', 304, 310, 1);
check_delivered('(3) before the crash');
crash_and_lose('(3)');
check_delivered('(3) after the crash');

$node->stop;
done_testing();

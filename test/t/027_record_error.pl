# 027_record_error.pl: a WAL record the writer cannot process.
#
# Any ERROR while the writer processes a record used to kill the worker;
# the postmaster restarted it, it read the same WAL and died again at the
# same record, for ever, and writer_status().last_error was never set.  Now
# the writer catches the error, reports it (a WARNING per attempt, and
# last_error naming the problem and the WAL record, kept in shared memory
# across the restarts until delivery gets past it), pauses -- longer after
# each failed attempt -- and restarts to try again from its files and its
# slot, so that nothing is lost or repeated.
#
# The fault is real: with audit.writer_memory = 64kB a big transaction's
# events are dropped from the writer's memory, to be read back from the
# WAL at its commit, and the WAL segment holding them is made unreadable
# (chmod 0000; the server does not run as root) after the writer has read
# it once, so the read-back at the commit fails.  The first attempt's
# WARNING and last_error name the problem, that it happened while reading
# back the transaction's spilled events (its xid and the LSN range), and
# the WAL record; the next attempts fail as the writer reads that segment
# again from its slot.  While it is so: the server log has one WARNING per
# attempt (one writer process per attempt) at growing intervals, not a
# tight loop, and flush() returns false.  Once the segment is readable
# again, delivery resumes by itself: the stream holds every committed
# event (as read back through a test_decoding slot) exactly once, in
# commit order, chain intact, and last_error is cleared.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wal_events stream_texts wait_log);
use StreamCheck;

plan skip_all => 'root ignores file permissions' if $> == 0;

my $node = audit_node('record_error');
$node->append_conf('postgresql.conf', "audit.writer_memory = '64kB'");
$node->reload;
my $dir = stream_dir($node);

$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT g, 'before' FROM generate_series(1, 3) g;
});
is($node->safe_psql('postgres', 'SHOW audit.writer_memory'), '64kB',
	'audit.writer_memory is 64kB');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'the first events are delivered');

# The writer's WARNINGs about the record, from the log offset on:
# ([seconds since midnight, pid], ...).
sub warnings_since
{
	my ($offset) = @_;
	my @w;
	foreach my $l (split /\n/, slurp_file($node->logfile, $offset))
	{
		next
		  unless $l =~
		  /^\S+ (\d\d):(\d\d):(\d\d\.\d+) \S+ \[(\d+)\] WARNING:  activity_audit writer cannot deliver: could not open file .*Permission denied/;
		push @w, [ $1 * 3600 + $2 * 60 + $3, $4 ];
	}
	return @w;
}

###########################################################################
# The WAL of a spilled transaction is unreadable at its commit
###########################################################################
# the big transaction's events in a WAL segment of their own, complete
# (switched) and read by the writer before it is made unreadable
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
my $big = $node->background_psql('postgres', on_error_stop => 1);
$big->query_safe('BEGIN');
$big->query_safe(q{INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(100, 3099) g});
my $xid = $big->query_safe('SELECT txid_current()');
my $segment = $node->data_dir . '/pg_wal/'
  . $big->query_safe('SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'the writer has read the open transaction');
cmp_ok(writer_status($node)->{spilled_bytes}, '>', 0,
	'its events are not in the writer\'s memory');
ok(-f $segment, 'its WAL segment is there');

chmod(0000, $segment) or die "chmod $segment: $!";
my $log_offset = -s $node->logfile;
$big->query_safe('COMMIT');
$big->quit;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'after the big one')});

ok( wait_log(
		$node,
		qr/WARNING: .*could not open file .*Permission denied \(reading back the spilled events of transaction $xid from the WAL from [0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+; WAL record at [0-9A-F]+\/[0-9A-F]+\)/,
		$log_offset, 30),
	'the first WARNING names the problem, the spilled transaction, its range and the WAL record')
  or diag(slurp_file($node->logfile, $log_offset));
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%could not open file%Permission denied%'
		  FROM activity_audit.writer_status()}),
	'last_error names the problem')
  or diag('last_error: ' . (writer_status($node)->{last_error} // 'null'));
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('2s')}),
	'f', 'flush() returns false meanwhile');

# four attempts, each a writer process of its own
my @w;
my $deadline = time + 90;
while (time < $deadline)
{
	@w = warnings_since($log_offset);
	last if @w >= 4;
	usleep(200_000);
}
cmp_ok(scalar(@w), '>=', 4, 'the writer tries again and again');
@w = @w[ 0 .. 3 ] if @w > 4;
my %pids = map { $_->[1] => 1 } @w;
ok(@w >= 4 && keys(%pids) == @w,
	'one WARNING per attempt (each attempt a new writer process)');
my @gaps = map { $w[$_][0] - $w[ $_ - 1 ][0] } 1 .. $#w;
note('seconds between attempts: ' . join(', ', map { sprintf('%.2f', $_) } @gaps));
ok(@gaps && !grep({ $_ < 0.9 } @gaps),
	'no tight loop: at least a second between attempts');
ok(@gaps == 3 && $gaps[1] > $gaps[0] && $gaps[2] > $gaps[1],
	'the pause grows from one attempt to the next');
my $st = writer_status($node);
like($st->{last_error} // '', qr/could not open file .*Permission denied/,
	'last_error survives the restarts of the writer');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('1s')}),
	'f', 'flush() still returns false');

###########################################################################
# Readable again: delivery resumes by itself, exactly once
###########################################################################
chmod(0600, $segment) or die "chmod $segment: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('90s')}),
	't', 'once the segment is readable, delivery resumes by itself');
ok($node->poll_query_until('postgres',
		'SELECT last_error IS NULL FROM activity_audit.writer_status()'),
	'last_error is cleared');
my $events = stream_ok($node, 'stream valid (seq 1..N, chain intact)');
my @wal = wal_events($node);
is(scalar(@wal), 3 + 3000 + 1, 'every event committed');
is(scalar(@$events), scalar(@wal), 'as many events in the stream');
my @texts = stream_texts($dir);
my ($k) = grep { ($texts[$_] // '') ne ($wal[$_] // '') } 0 .. $#wal;
ok(!defined $k, 'the stream holds the committed events, once each, in commit order')
  or diag("event $k differs: stream " . ($texts[$k] // '(none)') . "\n  WAL " . ($wal[$k] // '(none)'));
is($events->[-1]{instance_id}, '4', 'the small commit after the big one is last');

# and it goes on working
$node->safe_psql('postgres', q{INSERT INTO t VALUES (5, 'later')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'a later event is delivered');
is(scalar(@{ stream_ok($node, 'stream still valid') }), scalar(@wal) + 1,
	'one more event in the stream');

$node->stop;
done_testing();

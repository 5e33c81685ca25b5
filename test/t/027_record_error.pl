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
# The fault is real: with audit.writer_memory = 64kB a big transaction must
# spill, and its spill directory ($PGDATA/pg_activity_audit/spill) is made
# unwritable (chmod 0500; the server does not run as root), so the spill
# file cannot be created.  While it is so: last_error names the spill file
# and the WAL record, the server log has one WARNING per attempt (one
# writer process per attempt) at growing intervals, not a tight loop, and
# flush() returns false.  Once the directory is writable again, delivery
# resumes by itself: the stream holds every committed event (as read back
# through a test_decoding slot) exactly once, in commit order, chain
# intact, and last_error is cleared.

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
my $spill = $node->data_dir . '/pg_activity_audit/spill';
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
ok(-d $spill, 'the spill directory exists');

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
		  /^\S+ (\d\d):(\d\d):(\d\d\.\d+) \S+ \[(\d+)\] WARNING:  activity_audit writer cannot deliver: .*spill/;
		push @w, [ $1 * 3600 + $2 * 60 + $3, $4 ];
	}
	return @w;
}

###########################################################################
# The spill directory is unwritable
###########################################################################
chmod(0500, $spill) or die "chmod $spill: $!";
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(100, 3099) g});
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'after the big one')});

ok(wait_log($node, qr/WARNING: .*could not create spill file .*Permission denied/,
		$log_offset, 30),
	'the server log has a WARNING naming the problem');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT last_error LIKE '%could not create spill file%Permission denied%'
		   AND last_error ~ 'WAL record at [0-9A-F]+/[0-9A-F]+'
		  FROM activity_audit.writer_status()}),
	'last_error names the spill file and the WAL record')
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
like($st->{last_error} // '', qr/could not create spill file/,
	'last_error survives the restarts of the writer');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('1s')}),
	'f', 'flush() still returns false');

###########################################################################
# Writable again: delivery resumes by itself, exactly once
###########################################################################
chmod(0700, $spill) or die "chmod $spill: $!";
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('90s')}),
	't', 'once the directory is writable, delivery resumes by itself');
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

# Copyright: activity_audit contributors
#
# 014_spill_largest.pl: past audit.writer_memory (here 64kB, its minimum)
# the writer spills the largest buffered transaction, as PostgreSQL's
# reorderbuffer does, not whichever transaction received the event that
# crossed the limit: one big open transaction leaves memory (its events
# are read back from the WAL at its commit) while the small transactions
# around it stay in memory.  spilled_bytes, the bytes of events of open
# transactions that are not in memory, shows which: it is exactly the big
# one's.  No spill file is written.
#
#  (0) Calibration: one committed row gives the size of an event's fixed
#      part, so the next phases can size rows against the 64kB limit.
#  (1) A big open transaction holds 6 events, ~60 kB in memory in all
#      (under the limit, nothing spilled).  Then 5 small transactions stay
#      open with one ~6 kB event each (each crosses the limit), then 30
#      more commit one after another.  While they are open spilled_bytes
#      is exactly the big transaction's event bytes, before and after the
#      35 small commits: nothing of the small ones is spilled; the small
#      ones are delivered while the big one is open; after its COMMIT the
#      stream holds everything exactly once, in commit order, and
#      spilled_bytes is 0.
#  (2) A mix: a big transaction inserting 8,000 rows in 8 statements,
#      spilled many times, with 16 small transactions opened in between
#      and kept open: spilled_bytes is at most the big one's bytes; all
#      delivered exactly once, in commit order.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest qw(audit_node writer_status stream_texts spill_files);
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $db    = 'postgres';
my $LIMIT = 64 * 1024;

# full WAL format: the expected sizes are those of whole events
my $node = audit_node('spill_largest', conf => "audit.wal_format = full\n");
$node->append_conf('postgresql.conf', "audit.writer_memory = '64kB'");
$node->reload;
$node->safe_psql(
	$db, q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE tl (id int PRIMARY KEY, pad text NOT NULL);
	SELECT activity_audit.track('tl');
});
is($node->safe_psql($db, 'SHOW audit.writer_memory'),
	'64kB', 'audit.writer_memory is 64kB');

###########################################################################
# helpers
###########################################################################

sub status { return writer_status($node, $db); }

sub flush_ok
{
	my ($name) = @_;
	is($node->safe_psql($db, "SELECT activity_audit.flush('120s')"),
		't', "flush: $name");
}

# Wait (bounded) until the writer has read the WAL up to $lsn: flush()
# from another session flushes the WAL of open transactions too.
sub wait_read
{
	my ($lsn, $name) = @_;
	flush_ok("WAL up to $lsn ($name)");
	ok( $node->poll_query_until(
			$db, "SELECT read_lsn >= '$lsn' FROM activity_audit.writer_status()"),
		"writer read the WAL: $name");
}

# The validated stream: [id, event text as buffered] per event.
sub stream_events
{
	my ($name) = @_;
	my ($ev, $err) = check_stream($node);
	ok(!defined $err, "stream valid: $name") or diag($err);
	my @texts = stream_texts(stream_dir($node));
	is(scalar(@texts), scalar(@$ev), "every line parsed: $name");
	return map { [ $ev->[$_]{instance_repr}{id}, $texts[$_] ] } 0 .. $#$ev;
}

# Compare id lists with one assertion and a short diagnosis.
sub ids_are
{
	my ($got, $want, $name) = @_;
	is(join(',', @$got), join(',', @$want), $name);
}

# An open transaction in a session of its own that inserted the given
# rows: [session, xid].
sub open_txn
{
	my ($sql) = @_;
	my $s = $node->background_psql($db, on_error_stop => 1);
	$s->query_safe('BEGIN');
	$s->query_safe($sql);
	my $xid = $s->query_safe('SELECT txid_current()');
	return [ $s, $xid ];
}

sub current_lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()'); }

###########################################################################
# (0) calibration: the fixed part of an event of table tl
###########################################################################

$node->safe_psql($db, q{INSERT INTO tl VALUES (1000000, repeat('x', 1000))});
flush_ok('calibration row');
my @ev = stream_events('calibration');
is(scalar(@ev), 1, 'calibration: one event');
my $fixed = length($ev[0][1]) - 1000;
note("an event of tl is its pad plus $fixed bytes");
cmp_ok($fixed, '>', 50,   'calibration: fixed part of an event is plausible (> 50)');
cmp_ok($fixed, '<', 3000, 'calibration: fixed part of an event is plausible (< 3000)');

# Memory of one buffered event: its allocation (header, text, '}', NUL),
# above 8 kB exact plus a chunk header; 6 of them come to ~60 kB.
my $big_pad = int(60_000 / 6) - $fixed - 40;
# Small events between 4 and 8 kB take an 8 kB chunk: big + one small is
# over the limit, five small ones are well under it.
my $small_pad = 6000 - $fixed - 22;

###########################################################################
# (1) one big open transaction under the limit, small ones crossing it
###########################################################################

my $spilled0 = status()->{spilled_bytes};
my ($big, $big_xid) = @{
	open_txn("INSERT INTO tl SELECT g, repeat('b', $big_pad)"
		  . " FROM generate_series(1000001, 1000006) g")
  };
wait_read(current_lsn(), 'big transaction, under the limit');
is($spilled0, 0, 'phase 1: spilled_bytes 0 before');
is(status()->{spilled_bytes}, 0, 'phase 1: nothing spilled while under the limit');

my @small;
for my $i (1 .. 5)
{
	push @small,
	  open_txn("INSERT INTO tl VALUES (" . (2000000 + $i) . ", repeat('s', $small_pad))");
}
wait_read(current_lsn(), '5 small open transactions');
my $spilled_5 = status()->{spilled_bytes};
cmp_ok($spilled_5, '>', 0, 'phase 1: with 5 small transactions open something is spilled');
$_->[0]->query_safe('COMMIT') foreach @small;
$_->[0]->quit foreach @small;

for my $i (6 .. 35)
{
	$node->safe_psql($db,
		"INSERT INTO tl VALUES (" . (2000000 + $i) . ", repeat('s', $small_pad))");
}
flush_ok('35 small transactions committed while the big one is open');
my $spilled1 = status()->{spilled_bytes};
is($spilled1, $spilled_5, 'phase 1: the 35 small commits spilled nothing more');
@ev = stream_events('small ones delivered while the big one is open');
ids_are([ map { $_->[0] } @ev ], [ 1000000, 2000001 .. 2000035 ],
	'phase 1: the 35 small transactions are delivered while the big one is open');

$big->query_safe('COMMIT');
$big->quit;
flush_ok('big transaction');
@ev = stream_events('after phase 1');
ids_are([ map { $_->[0] } @ev ],
	[ 1000000, 2000001 .. 2000035, 1000001 .. 1000006 ],
	'phase 1: every event exactly once, in commit order');
my $big_bytes = 0;
$big_bytes += length($_->[1]) foreach grep { $_->[0] >= 1000001 && $_->[0] <= 1000006 } @ev;
is($spilled1, $big_bytes,
	"phase 1: spilled_bytes was exactly the big transaction's events ($big_bytes bytes)");
is(status()->{spilled_bytes}, 0, 'phase 1: spilled_bytes 0 after the commit');
is(status()->{pending_xacts}, 0, 'phase 1: no pending transaction');

###########################################################################
# (2) a big transaction spilled several times among small open ones
###########################################################################

my $s_id = 3000000;
($big, $big_xid) = @{ open_txn('SELECT 1') };
@small = ();
for my $k (0 .. 7)
{
	my $lo = 4000001 + $k * 1000;
	$big->query_safe("INSERT INTO tl SELECT g, repeat('m', 200)"
		  . " FROM generate_series($lo, $lo + 999) g");
	for (1 .. 2)
	{
		$s_id++;
		push @small, open_txn("INSERT INTO tl VALUES ($s_id, repeat('s', 200))");
	}
}
wait_read(current_lsn(), 'big transaction among 16 small open ones');
my $spilled2 = status()->{spilled_bytes};
cmp_ok($spilled2, '>', 0, 'phase 2: the big transaction is spilled');
$_->[0]->query_safe('COMMIT') foreach @small;
$_->[0]->quit foreach @small;
$big->query_safe('COMMIT');
$big->quit;
flush_ok('phase 2');

@ev = stream_events('after phase 2');
my @p2 = grep { $_->[0] > 3000000 } @ev;
ids_are([ map { $_->[0] } @p2 ], [ 3000001 .. 3000016, 4000001 .. 4008000 ],
	'phase 2: every event exactly once, in commit order');
$big_bytes = 0;
$big_bytes += length($_->[1]) foreach grep { $_->[0] >= 4000001 } @p2;
cmp_ok($spilled2, '<=', $big_bytes,
	"phase 2: spilled_bytes was at most the big transaction's events ($big_bytes bytes)");
is(scalar(@ev), $node->safe_psql($db, 'SELECT count(*) FROM tl'),
	'stream events == committed rows');
is(status()->{spilled_bytes}, 0, 'phase 2: spilled_bytes 0 after the commit');
is(join(' ', spill_files($node)), '', 'no spill file was written');
is(status()->{pending_xacts}, 0, 'phase 2: no pending transaction');
is(status()->{last_error}, undef, 'no writer error');

$node->stop;
done_testing();

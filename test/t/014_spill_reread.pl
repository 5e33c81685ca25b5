# Copyright: activity_audit contributors
#
# 014_spill_reread.pl: the events that the writer drops from memory past
# audit.writer_memory (here 64kB) are read back from the WAL at their
# commit, exactly as they were first read, in the cases where that is
# hardest to get right.  After every phase the whole stream is validated
# (StreamCheck) and holds every committed row exactly once.
#
#  (1) Interleaved: two big transactions insert in turns (each spilled many
#      times, their spilled ranges overlapping in the WAL) while small ones
#      commit in between; each is delivered whole, in its own insertion
#      order, in commit order, nothing of the other inside it.
#  (2) The writer restarted (SIGTERM: it exits, the postmaster restarts it) twice
#      while a spilled transaction stays open, rows inserted in between:
#      after its COMMIT it is delivered exactly once, in order.
#  (3) Forgeries inside a spilled range: with prefix activity_audit, an
#      unsigned transactional message (between rows of a subtransaction), a
#      non-transactional one and a copy of a real event of another
#      transaction (its signature valid, for the wrong transaction), and a
#      message with another prefix, between rows of a transaction that is
#      spilled after them.  None is delivered: forged_rejected counts each
#      of the three forgeries exactly once and the log has one WARNING for
#      each (the read-back rejects them again without counting twice); the
#      rows around them are delivered exactly once, in order.
#  (4) Prepared transactions (2PC): a spilled transaction with a released
#      and a rolled-back savepoint is prepared, the writer restarted and
#      the server restarted while it is prepared, then COMMIT PREPARED:
#      delivered exactly once, in order, without the rolled-back rows.  A
#      second spilled prepared transaction is rolled back: nothing of it,
#      and spilled_bytes is 0 again.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest qw(audit_node writer_status wal_messages spill_files);
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $db = 'postgres';

my $node = audit_node(
	'spill_reread',
	conf => q{
audit.writer_memory = '64kB'
max_prepared_transactions = 4
});
$node->safe_psql(
	$db, q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text NOT NULL);
	SELECT activity_audit.track('t');
});
is($node->safe_psql($db, 'SHOW audit.writer_memory'), '64kB', 'audit.writer_memory is 64kB');

###########################################################################
# helpers
###########################################################################

sub status { return writer_status($node, $db); }

sub flush_ok
{
	my ($name) = @_;
	is($node->safe_psql($db, "SELECT activity_audit.flush('120s')"), 't', "flush: $name");
}

sub current_lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()'); }

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

# Restart the writer with SIGTERM (it exits and the postmaster starts it
# again) and wait until a new one has caught up.
sub restart_writer
{
	my ($name) = @_;
	my $old = status()->{pid};
	kill 'TERM', $old or die "kill $old: $!";
	ok( $node->poll_query_until(
			$db,
			"SELECT pid IS NOT NULL AND pid <> $old FROM activity_audit.writer_status()"),
		"a new writer runs: $name");
	flush_ok("new writer caught up: $name");
}

# The validated stream's events.
sub stream
{
	my ($name) = @_;
	my ($ev, $err) = check_stream($node);
	ok(!defined $err, "stream valid: $name") or diag($err);
	return @$ev;
}

# Every committed row of t exactly once in the stream, nothing else.
sub stream_matches_table
{
	my ($events, $name) = @_;
	is(scalar(@$events), $node->safe_psql($db, 'SELECT count(*) FROM t'),
		"stream events == committed rows: $name");
	my %seen;
	my @dup = grep { $seen{ $_->{instance_repr}{id} }++ } @$events;
	is(scalar(@dup), 0, "no row delivered twice: $name")
	  or diag('first duplicate id ' . $dup[0]{instance_repr}{id});
}

# Ids of the stream's events with ids in [lo, hi], in stream order.
sub ids_in
{
	my ($events, $lo, $hi) = @_;
	return [ grep { $_ >= $lo && $_ <= $hi } map { $_->{instance_repr}{id} } @$events ];
}

# Compare id lists with one assertion and a short diagnosis.
sub ids_are
{
	my ($got, $want, $name) = @_;
	my $first_diff;
	for my $i (0 .. ($#$got > $#$want ? $#$got : $#$want))
	{
		if (!defined $got->[$i] || !defined $want->[$i] || $got->[$i] != $want->[$i])
		{
			$first_diff = $i;
			last;
		}
	}
	ok(!defined $first_diff, $name)
	  or diag(sprintf('got %d ids, want %d; first difference at index %d (got %s, want %s)',
			scalar(@$got), scalar(@$want), $first_diff,
			$got->[$first_diff] // 'none', $want->[$first_diff] // 'none'));
}

# An open transaction in a session of its own.
sub begin_txn
{
	my $s = $node->background_psql($db, on_error_stop => 1);
	$s->query_safe('BEGIN');
	return $s;
}

sub rows_sql
{
	my ($lo, $hi, $pad) = @_;
	return "INSERT INTO t SELECT g, repeat('$pad', 300) FROM generate_series($lo, $hi) g";
}

sub sql_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

###########################################################################
# (1) two big transactions in turns, small ones in between
###########################################################################

my $a = begin_txn();
my $b = begin_txn();
for my $k (0 .. 9)
{
	$a->query_safe(rows_sql(100_001 + $k * 500, 100_000 + ($k + 1) * 500, 'a'));
	$b->query_safe(rows_sql(200_001 + $k * 500, 200_000 + ($k + 1) * 500, 'b'));
	$node->safe_psql($db, "INSERT INTO t VALUES (" . (1 + $k) . ", 'small')");
}
wait_read(current_lsn(), 'two interleaved big transactions');
my $spilled = status()->{spilled_bytes};
cmp_ok($spilled, '>', 2 * 4000 * 300, "phase 1: both big transactions are spilled ($spilled bytes)");
is(join(' ', spill_files($node)), '', 'phase 1: no spill file');
$b->query_safe('COMMIT');
$a->query_safe('COMMIT');
$a->quit;
$b->quit;
flush_ok('phase 1');
my @ev = stream('phase 1');
ids_are([ map { $_->{instance_repr}{id} } @ev ],
	[ 1 .. 10, 200_001 .. 205_000, 100_001 .. 105_000 ],
	'phase 1: the small ones, then the big ones whole, in commit order');
stream_matches_table(\@ev, 'phase 1');
is(status()->{spilled_bytes}, 0, 'phase 1: spilled_bytes 0');

###########################################################################
# (2) the writer restarted while a spilled transaction is open
###########################################################################

my $s = begin_txn();
$s->query_safe(rows_sql(300_001, 303_000, 'r'));
wait_read(current_lsn(), 'open spilled transaction');
cmp_ok(status()->{spilled_bytes}, '>', 0, 'phase 2: the open transaction is spilled');
restart_writer('spilled transaction open');
cmp_ok(status()->{spilled_bytes}, '>', 0,
	'phase 2: the new writer read it again and spilled it');
$s->query_safe(rows_sql(303_001, 306_000, 'r'));
$node->safe_psql($db, "INSERT INTO t VALUES (20, 'small')");
flush_ok('small commit after the first restart');
restart_writer('spilled transaction still open');
$s->query_safe(rows_sql(306_001, 307_000, 'r'));
$s->query_safe('COMMIT');
$s->quit;
flush_ok('phase 2');
@ev = stream('phase 2');
ids_are(ids_in(\@ev, 300_001, 307_000), [ 300_001 .. 307_000 ],
	'phase 2: the transaction open across two writer restarts, exactly once, in order');
is($ev[-7001]{instance_repr}{id}, 20, 'phase 2: the small commit comes before it');
stream_matches_table(\@ev, 'phase 2');
is(status()->{last_error}, undef, 'phase 2: no writer error');

###########################################################################
# (3) forgeries inside a spilled range
###########################################################################

# a real event of another transaction, signature and all
my ($real) = grep { /"id":20,/ } wal_messages($node);
like($real // '', qr/"[0-9]+:[0-9]+:[0-9a-f]{16}"[\]\}]\z/, 'phase 3: a real signed message to copy');
my $forged0 = status()->{forged_rejected};
my $log_offset = -s $node->logfile;

$s = begin_txn();
$s->query_safe(rows_sql(400_001, 401_000, 'f'));
$s->query_safe('SAVEPOINT sp');
$s->query_safe(rows_sql(401_001, 401_250, 'f'));
$s->query_safe(q{SELECT pg_logical_emit_message(true, 'activity_audit', '{"event_type":"CREATE"}')});
$s->query_safe(rows_sql(401_251, 401_500, 'f'));
$s->query_safe('RELEASE SAVEPOINT sp');
$s->query_safe(q{SELECT pg_logical_emit_message(false, 'activity_audit', '{"a":1}')});
$s->query_safe(
	'SELECT pg_logical_emit_message(true, \'activity_audit\', ' . sql_literal($real) . ')');
$s->query_safe(
	'SELECT pg_logical_emit_message(true, \'other\', ' . sql_literal($real) . ')');
$s->query_safe(rows_sql(401_501, 403_000, 'f'));
wait_read(current_lsn(), 'forgeries between spilled rows');
cmp_ok(status()->{spilled_bytes}, '>', 2500 * 300,
	'phase 3: the rows after the forgeries are spilled too');
$s->query_safe('COMMIT');
$s->quit;
flush_ok('phase 3');
@ev = stream('phase 3');
ids_are(ids_in(\@ev, 400_001, 403_000), [ 400_001 .. 403_000 ],
	'phase 3: the real rows around the forgeries, exactly once, in order');
stream_matches_table(\@ev, 'phase 3');
is(scalar(grep { !defined $_->{instance_repr} } @ev), 0, 'phase 3: nothing forged delivered');
is(status()->{forged_rejected} - $forged0, 3,
	'phase 3: forged_rejected counts the three forgeries exactly once');
my @warnings = (slurp_file($node->logfile, $log_offset) =~ /^.*WARNING: .*$/mg);
is(scalar(@warnings), 3, 'phase 3: one WARNING for each forgery')
  or diag(join("\n", @warnings));
is(status()->{last_error}, undef, 'phase 3: no writer error');

###########################################################################
# (4) prepared transactions
###########################################################################

my $n_before = scalar(@ev);
$s = begin_txn();
$s->query_safe(rows_sql(500_001, 502_000, 'p'));
$s->query_safe('SAVEPOINT keep');
$s->query_safe(rows_sql(502_001, 503_000, 'p'));
$s->query_safe('RELEASE SAVEPOINT keep');
$s->query_safe('SAVEPOINT gone');
$s->query_safe(rows_sql(600_001, 601_000, 'x'));
$s->query_safe('ROLLBACK TO SAVEPOINT gone');
$s->query_safe(rows_sql(503_001, 504_000, 'p'));
$s->query_safe(q{PREPARE TRANSACTION 'big'});
$s->quit;

$s = begin_txn();
$s->query_safe(rows_sql(700_001, 702_000, 'y'));
$s->query_safe(q{PREPARE TRANSACTION 'gone'});
$s->quit;

$node->safe_psql($db, "INSERT INTO t VALUES (30, 'small')");
wait_read(current_lsn(), 'two spilled prepared transactions');
cmp_ok(status()->{spilled_bytes}, '>', 6000 * 300, 'phase 4: the prepared transactions are spilled');
restart_writer('two prepared transactions');
$node->restart;
$node->poll_query_until($db, 'SELECT pid IS NOT NULL FROM activity_audit.writer_status()')
  or die 'writer did not start';
flush_ok('after the server restart');
is($node->safe_psql($db, 'SELECT string_agg(gid, \',\' ORDER BY gid) FROM pg_prepared_xacts'),
	'big,gone', 'phase 4: both still prepared after the restarts');
cmp_ok(status()->{spilled_bytes}, '>', 6000 * 300,
	'phase 4: the restarted writer spilled them again');
$node->safe_psql($db, q{COMMIT PREPARED 'big'});
$node->safe_psql($db, q{ROLLBACK PREPARED 'gone'});
$node->safe_psql($db, "INSERT INTO t VALUES (31, 'small')");
flush_ok('phase 4');
@ev = stream('phase 4');
ids_are([ map { $_->{instance_repr}{id} } @ev[ $n_before .. $#ev ] ],
	[ 30, 500_001 .. 504_000, 31 ],
	'phase 4: the committed prepared transaction exactly once, in order; nothing rolled back');
stream_matches_table(\@ev, 'phase 4');
is(status()->{spilled_bytes}, 0, 'phase 4: spilled_bytes 0');
is(status()->{pending_xacts}, 0, 'phase 4: no pending transaction');
is(status()->{last_error}, undef, 'phase 4: no writer error');
is(join(' ', spill_files($node)), '', 'no spill file was ever written');

$node->stop;
done_testing();

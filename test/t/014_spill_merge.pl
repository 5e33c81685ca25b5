# Copyright: activity_audit contributors
#
# 014_spill_merge.pl: a commit of thousands of subtransactions merges
# their buffers in WAL order at a cost of events x log(parts), and, when
# they are spilled, reads all of them back from the WAL in one pass with
# bounded memory, not one reader or buffer per part.
#
#  (1) Merge cost, nothing spilled (audit.writer_memory = 256MB): the
#      writer's CPU time (user + system, /proc/<pid>/stat) to deliver a
#      committed transaction of 40,000 rows inserted one per subtransaction
#      (a PL/pgSQL loop with an exception block per row: 40,000 parts) is
#      compared with its CPU time for 40,000 rows of one part.  Before, the
#      merge scanned every part for each event (8 * 10^8 steps here, many
#      seconds); now it is at most 4 times the one-part cost plus 1 s.
#      Both are delivered exactly once, in order.
#  (2) Memory (audit.writer_memory = 64kB): a transaction of 2,000
#      subtransactions of 40 rows (~80 kB each), nearly all of whose events
#      are not in memory before its COMMIT (spilled_bytes); the writer's
#      peak memory (VmHWM) grows by at most 12 MB while it reads them back,
#      merges and delivers them.  (When each part was read back from a
#      spill file of its own, each held a read-ahead buffer.)  Delivered
#      exactly once, in order; no spill file is written.
#  (3) Nested subtransactions 12 deep, each level's rows before and after
#      its child's, so the ranges of 13 spilled parts overlap in the one
#      pass over the WAL, with some events larger than audit.writer_memory
#      itself: delivered exactly once, in WAL order.
#
# The stream is validated line by line without decoding the JSON (seq,
# prev_hash and hash as StreamCheck checks them), which is too slow for
# this many lines.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest qw(audit_node writer_status spill_files);
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $db = 'postgres';
my $t_start = time;

# full WAL format: the expected sizes are those of whole events
my $node = audit_node('spill_merge', conf => "audit.wal_format = full\n");
$node->safe_psql(
	$db, q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE tm (id int PRIMARY KEY, pad text NOT NULL);
	SELECT activity_audit.track('tm');
});

###########################################################################
# helpers
###########################################################################

sub status { return writer_status($node, $db); }

sub set_writer_memory
{
	my ($v) = @_;
	$node->safe_psql($db, "ALTER SYSTEM SET audit.writer_memory = '$v'");
	$node->reload;
	$node->poll_query_until($db, "SELECT current_setting('audit.writer_memory') = '$v'")
	  or die "audit.writer_memory not $v after reload";
	# the writer reloads its configuration between records
	$node->safe_psql($db, "SELECT activity_audit.flush('60s')");
}

sub flush_ok
{
	my ($name) = @_;
	is($node->safe_psql($db, "SELECT activity_audit.flush('300s')"),
		't', "flush: $name");
}

# Wait (bounded) until the writer has read the WAL up to $lsn.
sub wait_read
{
	my ($lsn, $name) = @_;
	flush_ok("WAL up to $lsn ($name)");
	ok( $node->poll_query_until(
			$db, "SELECT read_lsn >= '$lsn' FROM activity_audit.writer_status()"),
		"writer read the WAL: $name");
}

# CPU time of a process so far, in 10 ms ticks (user + system).
sub cpu_ticks
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or die "cannot read /proc/$pid/stat: $!";
	my $stat = <$fh>;
	close($fh);
	$stat =~ s/\A.*\) //s;    # past the command name
	my @f = split / /, $stat;
	return $f[11] + $f[12];   # fields 14 and 15 of stat(5)
}

# VmHWM of a process, in kB.
sub vm_hwm
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	my $hwm;
	while (<$fh>) { $hwm = $1 if /^VmHWM:\s+(\d+) kB/; }
	close($fh);
	return $hwm;
}

# The stream checked line by line: complete lines, seq 1..N, prev_hash =
# predecessor's hash, hash = chain_hash.  Returns (\@records, $error), a
# record being [id, txid, lsn].
sub fast_stream
{
	my @recs;
	my $prev = '0' x 64;
	my $seq  = 1;
	foreach my $f (stream_files(stream_dir($node)))
	{
		open(my $fh, '<:raw', $f) or return (\@recs, "cannot open $f: $!");
		(my $base = $f) =~ s{.*/}{};
		my $n = 0;
		while (my $raw = <$fh>)
		{
			$n++;
			my $where = "$base line $n";
			return (\@recs, "$where: incomplete line") unless $raw =~ /\n\z/;
			chomp(my $line = $raw);
			$line =~ /,"instance_repr":\{"id":(-?\d+),.*
				,"txid":(\d+),"seq":(\d+),"lsn":"([0-9A-F]+\/[0-9A-F]+)"
				,"committed_at":"[^"]*"
				,"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}\z/x
			  or return (\@recs, "$where: unexpected line: " . substr($line, 0, 200));
			my ($id, $txid, $s, $lsn, $ph, $h) = ($1, $2, $3, $4, $5, $6);
			return (\@recs, "$where: seq $s, expected $seq") unless $s == $seq;
			return (\@recs, "$where: prev_hash $ph, expected $prev") unless $ph eq $prev;
			my $want = chain_hash($prev, $line);
			return (\@recs, "$where: hash $h, recomputed $want") unless $h eq $want;
			push @recs, [ $id, $txid, $lsn ];
			$prev = $h;
			$seq++;
		}
		close($fh);
	}
	return (\@recs, undef);
}

# The stream valid, and every committed row in it exactly once.
sub fast_stream_ok
{
	my ($name) = @_;
	my ($recs, $err) = fast_stream();
	ok(!defined $err, "stream valid (line checks): $name") or diag($err);
	is(scalar(@$recs), $node->safe_psql($db, 'SELECT count(*) FROM tm'),
		"stream events == committed rows: $name");
	my %seen;
	my @dup = grep { $seen{ $_->[0] }++ } @$recs;
	is(scalar(@dup), 0, "no row delivered twice: $name")
	  or diag("first duplicate id $dup[0][0]");
	return $recs;
}

# The events of one transaction (ids in [lo, hi]) are exactly lo..hi in
# order, with one commit LSN.
sub txn_in_order
{
	my ($recs, $lo, $hi, $name) = @_;
	my @mine = grep { $_->[0] >= $lo && $_->[0] <= $hi } @$recs;
	my $ok = @mine == $hi - $lo + 1;
	my $first_diff;
	for my $i (0 .. $#mine)
	{
		if ($mine[$i][0] != $lo + $i) { $ok = 0; $first_diff = $i; last; }
	}
	ok($ok, "$name: rows $lo..$hi delivered exactly once, in order")
	  or diag(sprintf("got %d rows, first difference at index %s",
			scalar(@mine), $first_diff // '-'));
	my %lsn = map { $_->[2] => 1 } @mine;
	is(scalar(keys %lsn), 1, "$name: one commit LSN");
}

# An open transaction in a session of its own that ran $sql; waits until
# the writer has read its events; returns the session.
sub open_txn
{
	my ($sql, $name) = @_;
	my $s = $node->background_psql($db, on_error_stop => 1);
	$s->query_safe('BEGIN');
	$s->query_safe($sql);
	wait_read($s->query_safe('SELECT pg_current_wal_insert_lsn()'), $name);
	return $s;
}

# COMMIT an open transaction and wait until it is delivered; returns the
# writer's CPU ticks for that.
sub commit_cpu
{
	my ($s, $name) = @_;
	my $pid = status()->{pid};
	my $c0  = cpu_ticks($pid);
	$s->query_safe('COMMIT');
	$s->quit;
	flush_ok($name);
	is(status()->{pid}, $pid, "same writer process: $name");
	return cpu_ticks($pid) - $c0;
}

###########################################################################
# (1) the merge of 20,000 parts, in memory
###########################################################################

set_writer_memory('256MB');
my $N = 40_000;

my $s = open_txn("INSERT INTO tm SELECT g, 'one' FROM generate_series(1, $N) g",
	"$N rows in one part");
my $one_part = commit_cpu($s, "$N rows in one part");

$s = open_txn(
	qq{DO \$\$ BEGIN FOR i IN 1..$N LOOP
	  BEGIN
	    INSERT INTO tm VALUES (1000000 + i, 'sub');
	  EXCEPTION WHEN unique_violation THEN NULL;
	  END;
	END LOOP; END \$\$},
	"$N rows in $N subtransactions");
is(status()->{spilled_bytes}, 0, 'phase 1: nothing spilled');
cmp_ok(status()->{pending_xacts}, '>=', $N, "phase 1: $N parts pending");
my $parts = commit_cpu($s, "$N rows in $N subtransactions");

note("writer CPU to deliver $N rows: one part $one_part ticks, $N parts $parts ticks (10 ms)");
cmp_ok($parts, '<=', 4 * $one_part + 100,
	"phase 1: delivering $N parts costs at most 4 times the CPU of one part, plus 1 s");

my $recs = fast_stream_ok('after phase 1');
txn_in_order($recs, 1, $N, 'phase 1, one part');
txn_in_order($recs, 1_000_001, 1_000_000 + $N, "phase 1, $N parts");
is(status()->{pending_xacts}, 0, 'phase 1: no pending transaction');

###########################################################################
# (2) 2,000 spilled subtransactions: bounded read-ahead
###########################################################################

set_writer_memory('64kB');

# a fresh writer process: its VmHWM starts over
$node->restart;
$node->poll_query_until($db, 'SELECT pid IS NOT NULL FROM activity_audit.writer_status()')
  or die 'writer did not start';
flush_ok('writer restarted');
my $pid = status()->{pid};

my $SUBS = 2000;
my $ROWS = 40;
$s = open_txn(
	qq{DO \$\$ BEGIN FOR i IN 0..@{[ $SUBS - 1 ]} LOOP
	  BEGIN
	    INSERT INTO tm SELECT g, repeat('p', 600)
	      FROM generate_series(2000001 + i * $ROWS, 2000000 + (i + 1) * $ROWS) g;
	  EXCEPTION WHEN unique_violation THEN NULL;
	  END;
	END LOOP; END \$\$},
	"$SUBS subtransactions of $ROWS rows");
my $spilled = status()->{spilled_bytes};
cmp_ok($spilled, '>', ($SUBS - 10) * $ROWS * 600,
	"phase 2: nearly all events of the $SUBS subtransactions are not in memory before the commit ($spilled bytes)");
cmp_ok(status()->{pending_xacts}, '>=', $SUBS, "phase 2: $SUBS parts pending");
my $hwm0 = vm_hwm($pid);
my $t0   = time;
commit_cpu($s, "$SUBS spilled subtransactions");
my $hwm1 = vm_hwm($pid);
note(sprintf("read-back and merge of %d spilled parts: %.1f s; writer VmHWM %s kB before the commit, %s kB after",
	$SUBS, time - $t0, $hwm0 // '?', $hwm1 // '?'));
ok(defined $hwm0 && defined $hwm1, 'phase 2: writer memory readable from /proc');
cmp_ok(($hwm1 // 0) - ($hwm0 // 0), '<=', 12 * 1024,
	"phase 2: the writer's peak memory grows by at most 12 MB while merging $SUBS spilled parts");

$recs = fast_stream_ok('after phase 2');
txn_in_order($recs, 2_000_001, 2_000_000 + $SUBS * $ROWS, "phase 2, $SUBS spilled parts");
is(status()->{pending_xacts}, 0, 'phase 2: no pending transaction');
is(status()->{last_error}, undef, 'phase 2: no writer error');
is(status()->{spilled_bytes}, 0, 'phase 2: spilled_bytes 0 after the commit');
is(join(' ', spill_files($node)), '', 'phase 2: no spill file');

###########################################################################
# (3) nested subtransactions deeper than the read-ahead buffers
###########################################################################

# Each level inserts a block of rows, calls the next level in an exception
# block (a subtransaction of its own), then inserts another block: in WAL
# order the first blocks of levels 0..DEPTH, then the second blocks of
# levels DEPTH..0, so the spilled ranges of 13 parts nest in the WAL and
# one pass reads all of them.  Every 40th row is a 70 kB event, larger
# than audit.writer_memory itself.
my $DEPTH = 12;
my $BLOCK = 100;
$node->safe_psql(
	$db, qq{
	CREATE FUNCTION nest(depth int) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
	  INSERT INTO tm SELECT g, CASE WHEN g % 40 = 0 THEN repeat('L', 70000) ELSE repeat('p', 600) END
	    FROM generate_series(3000001 + depth * 1000, 3000000 + depth * 1000 + $BLOCK) g;
	  IF depth < $DEPTH THEN
	    BEGIN
	      PERFORM nest(depth + 1);
	    EXCEPTION WHEN unique_violation THEN NULL;
	    END;
	  END IF;
	  INSERT INTO tm SELECT g, CASE WHEN g % 40 = 0 THEN repeat('L', 70000) ELSE repeat('p', 600) END
	    FROM generate_series(3000501 + depth * 1000, 3000500 + depth * 1000 + $BLOCK) g;
	END \$\$});
$s = open_txn('SELECT nest(0)', "nested subtransactions $DEPTH deep");
cmp_ok(status()->{spilled_bytes}, '>', ($DEPTH + 1) * 2 * 70000,
	'phase 3: the levels are spilled');
commit_cpu($s, "nested subtransactions $DEPTH deep");
my @want;
for my $d (0 .. $DEPTH)
{
	push @want, 3000001 + $d * 1000 .. 3000000 + $d * 1000 + $BLOCK;
}
for my $d (reverse 0 .. $DEPTH)
{
	push @want, 3000501 + $d * 1000 .. 3000500 + $d * 1000 + $BLOCK;
}
$recs = fast_stream_ok('after phase 3');
my @got = map { $_->[0] } grep { $_->[0] > 3000000 } @$recs;
my $first_diff;
for my $i (0 .. $#want)
{
	if (!defined $got[$i] || $got[$i] != $want[$i]) { $first_diff = $i; last; }
}
ok(@got == @want && !defined $first_diff,
	'phase 3: nested subtransactions delivered exactly once, in WAL order')
  or diag(sprintf("got %d rows, want %d; first difference at index %s (got %s, want %s)",
		scalar(@got), scalar(@want), $first_diff // '-',
		defined $first_diff ? $got[$first_diff] // 'none' : '-',
		defined $first_diff ? $want[$first_diff] : '-'));
is(status()->{last_error}, undef, 'phase 3: no writer error');
is(status()->{spilled_bytes}, 0, 'phase 3: spilled_bytes 0 after the commit');
is(join(' ', spill_files($node)), '', 'phase 3: no spill file');

note(sprintf("total %.1f s", time - $t_start));
$node->stop;
done_testing();

# Copyright: activity_audit contributors
#
# 014_spill_merge.pl: a commit of thousands of subtransactions merges
# their buffers in WAL order at a cost of events x log(parts).
#
#  (1) Merge cost, nothing spilled (audit.writer_memory = 256MB): the
#      writer's CPU time (user + system, /proc/<pid>/stat) to deliver a
#      committed transaction of 40,000 rows inserted one per subtransaction
#      (a PL/pgSQL loop with an exception block per row: 40,000 parts) is
#      compared with its CPU time for 40,000 rows of one part.  Before, the
#      merge scanned every part for each event (8 * 10^8 steps here, many
#      seconds); now it is at most 4 times the one-part cost plus 1 s.
#      Both are delivered exactly once, in order.
#
# The stream is validated line by line without decoding the JSON (seq,
# prev_hash and hash as StreamCheck checks them), which is too slow for
# this many lines.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest qw(audit_node writer_status);
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $db = 'postgres';
my $t_start = time;

my $node = audit_node('spill_merge');
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

sub spill_dir { return $node->data_dir . '/pg_activity_audit/spill'; }

sub spill_files
{
	opendir(my $dh, spill_dir()) or return ('<no spill directory>');
	my @f = sort grep { $_ ne '.' && $_ ne '..' } readdir($dh);
	closedir($dh);
	return @f;
}

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

note(sprintf("total %.1f s", time - $t_start));
$node->stop;
done_testing();

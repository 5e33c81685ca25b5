# Copyright: activity_audit contributors
#
# 014_spill.pl: past audit.writer_memory (here 64kB) the writer drops the
# events of big open transactions from memory and reads them back from the
# WAL at their commit; it still delivers exactly the committed events,
# once, in WAL order within a transaction and in commit order across
# transactions; it writes no spill file; its memory does not grow with a
# transaction's size.
#
# Node "spill" (its whole stream validated with StreamCheck after each phase):
#  (1) One transaction inserts 50,000 rows, with a released savepoint block
#      (holding a nested savepoint) and a rolled-back savepoint block in
#      between; another session commits a small transaction while the big
#      one is open.  While it is open: spilled_bytes > 0, no spill file
#      (pg_activity_audit/spill is not even created), and the writer has
#      written (wchar, /proc/<pid>/io) less than 1 MB since BEGIN, while
#      more than 10 MB of events are not in its memory; spilled_bytes goes
#      down at ROLLBACK TO SAVEPOINT (those events will not be read back);
#      the small transaction is already delivered and nothing of the big
#      one.  After COMMIT and flush: the stream holds the small event, then
#      exactly the 50,000 committed rows in insertion order (ids ascending,
#      one commit LSN, one txid), none of the rolled-back rows;
#      spilled_bytes is 0; no transaction pending; the chain is valid.
#  (2) A big transaction (30,000 rows, spilled) that is rolled back delivers
#      nothing; spilled_bytes is 0 afterwards.
#  (4) Restarts in the middle: a big uncommitted transaction (20,000 rows,
#      spilled) is cut by a clean restart, another one by an immediate stop
#      (no abort record: a running-xacts record tells the writer it is
#      gone); a file "<xid>.spill" in pg_activity_audit/spill, as an
#      earlier version of the writer left them, is removed when the writer
#      starts (and logged), while another file there and the directory are
#      left alone.  Then a new big transaction (10,000 rows) commits:
#      delivered exactly once, in order, nothing of the cut ones.
# Node "spill_mem" (stream validated by this file's own line-level checker,
# the same seq/prev_hash/hash rules as StreamCheck without decoding the
# JSON, which is too slow for 300,000 lines; no spill directory is ever
# created):
#  (3) The writer's memory does not grow with a transaction's size: VmHWM
#      (from /proc/<pid>/status) of a fresh writer process after delivering
#      a 20,000-row transaction and, after a restart, of the next fresh
#      writer after a 200,000-row one (some 3,000 times audit.writer_memory)
#      differ by at most 8 MB.
#  (5) A committed 100,000-row transaction, the server stopped (immediate)
#      while the writer delivers it: after the restart it is delivered
#      exactly once in all, in order.
#  (6) 1,200 spilled subtransactions, read back in one pass at the commit.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest qw(:DEFAULT spill_files proc_io);
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $t_start = time;
my $db      = 'postgres';
my $node;    # the node the helpers work on

# A node with audit.writer_memory = 64kB and a tracked table t.
sub spill_node
{
	my ($name) = @_;
	# full WAL format: the sizes below are those of whole events
	my $n = audit_node($name, conf => "audit.wal_format = full\n");
	$n->append_conf('postgresql.conf', "audit.writer_memory = '64kB'");
	$n->reload;
	$n->safe_psql(
		$db, q{
		CREATE EXTENSION activity_audit;
		CREATE TABLE t (id int PRIMARY KEY, phase text NOT NULL);
		SELECT activity_audit.track('t');
	});
	is($n->safe_psql($db, 'SHOW audit.writer_memory'),
		'64kB', "$name: audit.writer_memory is 64kB after reload");
	return $n;
}

###########################################################################
# helpers
###########################################################################

# writer_status() as a hash ref.
sub writer_status
{
	return AuditTest::writer_status($node, $db);
}

# Where earlier versions of the writer spilled events to files.
sub spill_dir { return $node->data_dir . '/pg_activity_audit/spill'; }

# No "<xid>.spill" file anywhere: the writer writes none.
sub no_spill_file
{
	my ($name) = @_;
	is(join(' ', grep { /\.spill\z/ } spill_files($node)), '', "no spill file: $name");
}

sub flush_ok
{
	my ($name) = @_;
	is($node->safe_psql($db, "SELECT activity_audit.flush('120s')"),
		't', "flush: $name");
}

# Wait (bounded) until the writer started and caught up.
sub wait_writer
{
	$node->poll_query_until($db,
		"SELECT pid IS NOT NULL FROM activity_audit.writer_status()")
	  or die "writer did not start";
	$node->safe_psql($db, "SELECT activity_audit.flush('60s')") eq 't'
	  or die "writer did not catch up";
}

# Wait (bounded) until the writer has read the WAL up to $lsn (an open
# transaction's events before it are buffered or spilled by then).  The
# WAL of an open transaction may stay unflushed, so unreadable, for many
# seconds: flush() from another session flushes it and waits for the
# writer.
sub wait_read
{
	my ($lsn, $name) = @_;
	flush_ok("WAL up to $lsn ($name)");
	ok( $node->poll_query_until(
			$db,
			"SELECT read_lsn >= '$lsn' FROM activity_audit.writer_status()"),
		"writer read the WAL: $name");
}

# The validated stream (StreamCheck).
sub stream
{
	my ($name) = @_;
	my ($ev, $err) = check_stream($node);
	ok(!defined $err, "stream valid: $name") or diag($err);
	return @$ev;
}

# Ids of the committed rows of the given phases, ascending.
sub table_ids
{
	my ($phases) = @_;
	my $in = join(',', map { "'$_'" } @$phases);
	return [ split /\n/,
		$node->safe_psql($db, "SELECT id FROM t WHERE phase IN ($in) ORDER BY id") ];
}

# Ids of the stream's CREATE events of the given phases, in stream order.
sub stream_ids
{
	my ($events, $phases) = @_;
	my %want = map { $_ => 1 } @$phases;
	return [ map { $_->{instance_repr}{id} }
		  grep { $_->{event_type} eq 'CREATE' && $want{ $_->{instance_repr}{phase} } }
		  @$events ];
}

# Compare two id lists: one assertion, with a short diagnosis.
sub ids_are
{
	my ($got, $want, $name) = @_;
	my $ok = @$got == @$want;
	my $first_diff;
	for my $i (0 .. ($#$got < $#$want ? $#$got : $#$want))
	{
		if ($got->[$i] != $want->[$i]) { $first_diff = $i; $ok = 0; last; }
	}
	ok($ok, $name)
	  or diag(sprintf("got %d ids, want %d; first difference at index %s (got %s, want %s)",
			scalar(@$got), scalar(@$want), $first_diff // '-',
			defined $first_diff ? $got->[$first_diff] : '-',
			defined $first_diff ? $want->[$first_diff] : '-'));
}

# Whole stream vs whole table: every committed row exactly once, nothing else.
sub stream_matches_table
{
	my ($events, $name) = @_;
	my $rows = $node->safe_psql($db, 'SELECT count(*) FROM t');
	is(scalar(@$events), $rows, "stream events == committed rows: $name");
	my $creates = grep { $_->{event_type} eq 'CREATE' } @$events;
	is($creates, scalar(@$events), "stream holds only CREATE events: $name");
	my %seen;
	my @dup = grep { $seen{ $_->{instance_repr}{id} }++ } @$events;
	is(scalar(@dup), 0, "no row delivered twice: $name")
	  or diag("first duplicate id " . $dup[0]{instance_repr}{id});
}

###########################################################################
# node "spill"
###########################################################################

$node = spill_node('spill');

###########################################################################
# (1) a 50,000-row transaction with savepoints and a concurrent commit
###########################################################################

my $wpid = writer_status()->{pid};
my $io0  = proc_io($wpid);
my $big  = $node->background_psql($db, on_error_stop => 1);
$big->query_safe(q{BEGIN});
$big->query_safe(q{INSERT INTO t SELECT g, 'p1' FROM generate_series(1, 15000) g});
my $top_xid = $big->query_safe(q{SELECT txid_current()});
$big->query_safe(q{SAVEPOINT a});
$big->query_safe(q{INSERT INTO t SELECT g, 'p1' FROM generate_series(15001, 25000) g});
$big->query_safe(q{SAVEPOINT a2});
$big->query_safe(q{INSERT INTO t SELECT g, 'p1' FROM generate_series(25001, 30000) g});
$big->query_safe(q{RELEASE SAVEPOINT a});
$big->query_safe(q{SAVEPOINT b});
$big->query_safe(q{INSERT INTO t SELECT g, 'p1' FROM generate_series(100001, 110000) g});
my $b_xid = $big->query_safe(q{SELECT xmin FROM t WHERE id = 100001});
my $lsn = $big->query_safe(q{SELECT pg_current_wal_insert_lsn()});
isnt($b_xid, $top_xid, 'savepoint b has its own xid');

wait_read($lsn, 'big transaction up to savepoint b');
my $spilled_b = writer_status()->{spilled_bytes};
my $io1       = proc_io($wpid);
cmp_ok($spilled_b, '>', 10 * 1024 * 1024,
	'more than 10 MB of the open transaction\'s events are not in memory');
ok(!-e spill_dir(), 'no spill directory: nothing is spilled to files');
is(writer_status()->{pid}, $wpid, 'the same writer process all along');
ok(defined $io0->{wchar} && defined $io1->{wchar}, 'the writer\'s I/O counters are readable');
cmp_ok(($io1->{wchar} // 0) - ($io0->{wchar} // 0), '<', 1024 * 1024,
	'the writer wrote less than 1 MB while it dropped those events from memory');
note(sprintf('spilled_bytes %d; the writer wrote %d bytes (wchar), %d (write_bytes)',
	$spilled_b, ($io1->{wchar} // 0) - ($io0->{wchar} // 0),
	($io1->{write_bytes} // 0) - ($io0->{write_bytes} // 0)));

$big->query_safe(q{ROLLBACK TO SAVEPOINT b});
$lsn = $big->query_safe(q{SELECT pg_current_wal_insert_lsn()});
wait_read($lsn, 'after ROLLBACK TO SAVEPOINT b');
my $spilled_a = writer_status()->{spilled_bytes};
cmp_ok($spilled_a, '<', $spilled_b,
	'spilled_bytes goes down at ROLLBACK TO SAVEPOINT b: its events are not read back');
cmp_ok($spilled_a, '>', 0, 'the open transaction\'s own events are still to be read back');

$big->query_safe(q{INSERT INTO t SELECT g, 'p1' FROM generate_series(30001, 50000) g});

# the small transaction commits while the big one is open
$node->safe_psql($db, q{INSERT INTO t VALUES (-1, 'p1small')});
flush_ok('small transaction while big one open');
{
	my @ev = stream('small delivered while the big one is open');
	is(scalar(@ev), 1, 'only the small transaction is delivered while the big one is open');
	is($ev[0]{instance_repr}{id}, -1, 'it is the small transaction\'s row');
}
cmp_ok(writer_status()->{pending_xacts}, '>=', 1, 'big transaction pending in the writer');

$big->query_safe(q{COMMIT});
$big->quit;
flush_ok('big transaction');

my @ev = stream('after phase 1');
is(scalar(@ev), 50_001, 'phase 1: 50,001 events delivered');
is($ev[0]{instance_repr}{id}, -1, 'the small transaction comes first (it committed first)');
ids_are(stream_ids(\@ev, ['p1']), [ 1 .. 50_000 ],
	'phase 1: the big transaction\'s committed rows, ids ascending as inserted, none rolled back');
{
	my %lsn  = map { $_->{lsn}  => 1 } @ev[ 1 .. $#ev ];
	my %txid = map { $_->{txid} => 1 } @ev[ 1 .. $#ev ];
	is(scalar(keys %lsn), 1, 'big transaction: one commit LSN');
	is_deeply([ keys %txid ], [$top_xid], 'big transaction: one txid, its own');
	isnt($ev[0]{lsn}, (keys %lsn)[0], 'small and big transaction differ in commit LSN');
}
my $st = writer_status();
is($st->{spilled_bytes}, 0, 'phase 1: spilled_bytes 0: nothing left to read back');
is($st->{pending_xacts}, 0, 'phase 1: no pending transaction');
is($st->{last_error}, undef, 'phase 1: no writer error');
ok(!-e spill_dir(), 'phase 1: still no spill directory');
stream_matches_table(\@ev, 'phase 1');

###########################################################################
# (2) an aborted big transaction
###########################################################################

$big = $node->background_psql($db, on_error_stop => 1);
$big->query_safe(q{BEGIN});
$big->query_safe(q{INSERT INTO t SELECT g, 'p2' FROM generate_series(200001, 230000) g});
my $xid2 = $big->query_safe(q{SELECT txid_current()});
$lsn = $big->query_safe(q{SELECT pg_current_wal_insert_lsn()});
wait_read($lsn, 'transaction to be rolled back');
cmp_ok(writer_status()->{spilled_bytes}, '>', 0, 'the transaction to be rolled back is spilled');
no_spill_file('transaction to be rolled back');
$big->query_safe(q{ROLLBACK});
$big->quit;
$node->safe_psql($db, q{INSERT INTO t VALUES (-2, 'p2marker')});
flush_ok('after aborted big transaction');

@ev = stream('after phase 2');
is(scalar(@ev), 50_002, 'phase 2: only the marker was delivered');
is($ev[-1]{instance_repr}{id}, -2, 'phase 2: the marker is last');
is(scalar(@{ stream_ids(\@ev, ['p2']) }), 0, 'phase 2: no row of the aborted transaction');
is(writer_status()->{spilled_bytes}, 0, 'phase 2: spilled_bytes back to 0');
is(writer_status()->{pending_xacts}, 0, 'phase 2: no pending transaction');
stream_matches_table(\@ev, 'phase 2');

###########################################################################
# (4) restarts in the middle of an open big transaction
###########################################################################

# An open, spilled transaction of 20,000 rows cut by a restart in $mode.
sub cut_by_restart
{
	my ($mode, $first) = @_;
	my $open = $node->background_psql($db, on_error_stop => 0);
	$open->query_safe(q{BEGIN});
	$open->query_safe(
		"INSERT INTO t SELECT g, 'p4cut' FROM generate_series($first, $first + 19999) g");
	my $xid = $open->query_safe(q{SELECT txid_current()});
	my $lsn = $open->query_safe(q{SELECT pg_current_wal_insert_lsn()});
	wait_read($lsn, "open transaction before $mode restart");
	cmp_ok(writer_status()->{spilled_bytes}, '>', 0,
		"the open transaction is spilled before the $mode restart");
	no_spill_file("open transaction before $mode restart");
	$node->stop($mode);
	eval { $open->quit; };

	# a spill file as an earlier version of the writer left them (for a
	# transaction open at a shutdown or crash), and a file of someone else
	mkdir(spill_dir()) or die 'cannot create ' . spill_dir() . ": $!"
	  unless -d spill_dir();
	my $stray = spill_dir() . '/4000000000.spill';
	my $other = spill_dir() . '/README';
	foreach my $f ($stray, $other)
	{
		open(my $fh, '>', $f) or die "cannot create $f: $!";
		print $fh "junk\n";
		close($fh);
	}

	my $log_offset = -s $node->logfile;
	$node->start;
	wait_writer();
	ok(!-e $stray, "an old spill file is removed when the writer starts ($mode restart)");
	ok(-e $other && -d spill_dir(), "other files and the directory are left alone ($mode restart)");
	like(slurp_file($node->logfile, $log_offset),
		qr/LOG:  activity_audit writer removed 1 spill files of an earlier version/,
		"the removal is logged ($mode restart)");
}

cut_by_restart('fast',      3_000_001);
cut_by_restart('immediate', 3_100_001);

is($node->safe_psql($db, "SELECT count(*) FROM t WHERE phase = 'p4cut'"),
	0, 'the cut transactions left no rows');
$node->safe_psql($db,
	"INSERT INTO t SELECT g, 'p4' FROM generate_series(4000001, 4010000) g");
flush_ok('big transaction after the restarts');

# a running-xacts record (CHECKPOINT writes one) tells the writer that the
# transaction cut by the immediate stop is gone
$node->safe_psql($db, 'CHECKPOINT');
$node->safe_psql($db, q{INSERT INTO t VALUES (-4, 'p4marker')});
flush_ok('marker after checkpoint');

@ev = stream('after phase 4');
is(scalar(@{ stream_ids(\@ev, ['p4cut']) }), 0, 'phase 4: nothing of the cut transactions');
ids_are(stream_ids(\@ev, ['p4']), [ 4_000_001 .. 4_010_000 ],
	'phase 4: the new big transaction delivered exactly once, in order');
is($ev[-1]{instance_repr}{id}, -4, 'phase 4: the marker is last');
is(scalar(@ev), 50_002 + 10_001, 'phase 4: 10,001 more events');
is(writer_status()->{pending_xacts}, 0, 'phase 4: no pending transaction');
is(writer_status()->{spilled_bytes}, 0, 'phase 4: spilled_bytes 0');
no_spill_file('after phase 4');
stream_matches_table(\@ev, 'phase 4');

$node->stop;
note(sprintf("node spill done after %.1f s", time - $t_start));

###########################################################################
# node "spill_mem"
###########################################################################

$node = spill_node('spill_mem');

# The stream checked line by line without decoding the JSON: complete
# lines, seq 1..N, prev_hash = predecessor's hash (zeros first), hash =
# chain_hash (StreamCheck).  Returns (\@records, $error), a record being
# [id, phase, txid, lsn].
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
			$line =~ /\A\{"timestamp":"[^"]*",.*,"event_type":"CREATE",.*
				,"instance_repr":\{"id":(-?\d+),"phase":"(\w+)"\},.*
				,"txid":(\d+),"seq":(\d+),"lsn":"([0-9A-F]+\/[0-9A-F]+)"
				,"committed_at":"[^"]*"
				,"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}\z/x
			  or return (\@recs, "$where: unexpected line: " . substr($line, 0, 200));
			my ($id, $phase, $txid, $s, $lsn, $ph, $h) = ($1, $2, $3, $4, $5, $6, $7);
			return (\@recs, "$where: seq $s, expected $seq") unless $s == $seq;
			return (\@recs, "$where: prev_hash $ph, expected $prev") unless $ph eq $prev;
			my $want = chain_hash($prev, $line);
			return (\@recs, "$where: hash $h, recomputed $want") unless $h eq $want;
			push @recs, [ $id, $phase, $txid, $lsn ];
			$prev = $h;
			$seq++;
		}
		close($fh);
	}
	return (\@recs, undef);
}

# fast_stream as assertions: valid, and every committed row exactly once.
sub fast_stream_ok
{
	my ($name) = @_;
	my ($recs, $err) = fast_stream();
	ok(!defined $err, "stream valid (line checks): $name") or diag($err);
	is(scalar(@$recs), $node->safe_psql($db, 'SELECT count(*) FROM t'),
		"stream events == committed rows: $name");
	my %seen;
	my @dup = grep { $seen{ $_->[0] }++ } @$recs;
	is(scalar(@dup), 0, "no row delivered twice: $name")
	  or diag("first duplicate id $dup[0][0]");
	return $recs;
}

sub fast_ids
{
	my ($recs, $phase) = @_;
	return [ map { $_->[0] } grep { $_->[1] eq $phase } @$recs ];
}

###########################################################################
# (3) writer memory does not grow with transaction size
###########################################################################

# VmHWM, VmRSS and RssAnon of a process, in kB.
sub proc_mem
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return {};
	my %m;
	while (<$fh>)
	{
		$m{$1} = $2 if /^(VmHWM|VmRSS|RssAnon):\s+(\d+) kB/;
	}
	close($fh);
	return \%m;
}

# A fresh writer process (VmHWM starts over), one transaction of $n rows,
# delivered: the writer's memory afterwards.
sub big_txn_mem
{
	my ($n, $phase, $first) = @_;
	$node->restart;
	wait_writer();
	my $pid    = writer_status()->{pid};
	my $before = proc_mem($pid);
	my $t0     = time;
	$node->safe_psql($db,
		"INSERT INTO t SELECT g, '$phase' FROM generate_series($first, $first + $n - 1) g");
	flush_ok("$n-row transaction");
	my $after = proc_mem($pid);
	is(writer_status()->{pid}, $pid, "same writer process during the $n-row transaction");
	note(sprintf("%d rows: %.1f s; writer %d: before VmHWM %s kB RssAnon %s kB; "
		  . "after VmHWM %s kB RssAnon %s kB",
		$n, time - $t0, $pid, $before->{VmHWM} // '?', $before->{RssAnon} // '?',
		$after->{VmHWM} // '?', $after->{RssAnon} // '?'));
	return $after;
}

my $mem_small = big_txn_mem(20_000,  'p3a', 1_000_001);
my $mem_large = big_txn_mem(200_000, 'p3b', 2_000_001);
ok(defined $mem_small->{VmHWM} && defined $mem_large->{VmHWM},
	'writer memory readable from /proc');
cmp_ok(($mem_large->{VmHWM} // 0) - ($mem_small->{VmHWM} // 0), '<=', 8 * 1024,
	'writer VmHWM after 200,000 rows is at most 8 MB above that after 20,000 rows');
is(writer_status()->{pending_xacts}, 0, 'phase 3: no pending transaction');
ok(!-e spill_dir(), 'phase 3: no spill directory');

my $recs = fast_stream_ok('after phase 3');
ids_are(fast_ids($recs, 'p3a'), [ 1_000_001 .. 1_020_000 ],
	'phase 3: 20,000-row transaction delivered in order');
ids_are(fast_ids($recs, 'p3b'), [ 2_000_001 .. 2_200_000 ],
	'phase 3: 200,000-row transaction delivered in order');

###########################################################################
# (5) the server stopped while a big committed transaction is delivered
###########################################################################

sub stream_size
{
	my $s = 0;
	$s += -s $_ foreach stream_files(stream_dir($node));
	return $s;
}

# complete lines in the stream files
sub stream_lines
{
	my $n = 0;
	foreach my $f (stream_files(stream_dir($node)))
	{
		open(my $fh, '<:raw', $f) or next;
		local $/ = \(1 << 20);
		while (my $buf = <$fh>) { $n += ($buf =~ tr/\n//); }
		close($fh);
	}
	return $n;
}

my $lines_before = stream_lines();
my $size_before  = stream_size();
$node->safe_psql($db,
	"INSERT INTO t SELECT g, 'p5' FROM generate_series(5000001, 5100000) g");
my $deadline = time + 60;
usleep(1_000) while stream_size() == $size_before && time < $deadline;
$node->stop('immediate');
my $partial = stream_lines() - $lines_before;
note("stopped with $partial of the 100,000 events of the committed transaction on disk");
$node->start;
wait_writer();
$node->safe_psql($db, q{INSERT INTO t VALUES (-5, 'p5marker')});
flush_ok('after immediate stop during delivery');

$recs = fast_stream_ok('after immediate stop during delivery');
ids_are(fast_ids($recs, 'p5'), [ 5_000_001 .. 5_100_000 ],
	'phase 5: the transaction stopped during delivery is delivered exactly once, in order');
is($recs->[-1][0], -5, 'phase 5: the marker after it is last');
{
	my %lsn = map { $_->[3] => 1 } grep { $_->[1] eq 'p5' } @$recs;
	is(scalar(keys %lsn), 1, 'phase 5: one commit LSN for the whole transaction');
}
ok(!-e spill_dir(), 'phase 5: no spill directory');

# Phase 6: many spilled subtransactions at once -- a PL/pgSQL loop with an
# exception block per statement gives each block its own subtransaction,
# and past audit.writer_memory each of them is spilled; the commit reads
# all of them back in one pass of the WAL.  (When each had a spill file
# of its own, the writer ran out of file descriptors at 328.)
$node->safe_psql(
	$db, q{
	DO $$ BEGIN FOR i IN 0..1199 LOOP
	  BEGIN
	    INSERT INTO t SELECT g, 'p6' FROM generate_series(6000001 + i * 200, 6000000 + (i + 1) * 200) g;
	  EXCEPTION WHEN unique_violation THEN NULL;
	  END;
	END LOOP; END $$});
$node->safe_psql($db, q{INSERT INTO t VALUES (-6, 'p6marker')});
flush_ok('1,200 spilled subtransactions');
$recs = fast_stream_ok('after 1,200 spilled subtransactions');
ids_are(fast_ids($recs, 'p6'), [ 6_000_001 .. 6_240_000 ],
	'phase 6: every row of 1,200 spilled subtransactions delivered once, in order');
is($recs->[-1][0], -6, 'phase 6: the marker after it is last');
is(writer_status()->{last_error}, undef, 'phase 6: no error');
is(writer_status()->{spilled_bytes}, 0, 'phase 6: spilled_bytes 0');
ok(!-e spill_dir(), 'phase 6: no spill directory');

note(sprintf("total %.1f s", time - $t_start));
$node->stop;
done_testing();

# Copyright: activity_audit contributors
#
# 010_writer_crash.pl: the writer delivers every committed event exactly
# once, in commit order, with an intact hash chain -- in normal operation,
# across a clean restart, and across crashes.
#
#  (1) Basic delivery: committed rows (several transactions, two sessions
#      whose commit order differs from their start order) are delivered;
#      rows undone by ROLLBACK and ROLLBACK TO SAVEPOINT are not.  The stream
#      holds exactly the committed rows' events, in commit order, seq 1..N,
#      chain valid; writer_status() shows the writer, events_delivered = N
#      and no lag once flushed.
#  (2) Clean restart with events committed just before it (maybe not yet
#      delivered) and an open transaction it aborts: after the restart seq
#      continues without gap or repeat, nothing is lost or doubled.
#  (3) kill -9 of the postmaster while two clients commit small
#      transactions (one with synchronous_commit = off): after restart the
#      stream's CREATE events of that phase are exactly the rows in the
#      table (same ids, no duplicate), each client's in its commit order.
#  (4) kill -9 of the writer alone while two clients commit: the postmaster
#      reinitializes (crash recovery), the writer comes back, and the same
#      exact checks hold.
#  (3) and (4) run twice each, killing after different amounts of load,
#  with audit.rotation_size = 64kB so that the stream rotates often; after
#  every crash one more commit must be delivered last.
#
# After every phase the whole stream is re-read and validated (StreamCheck)
# and compared with the whole table: the stream's CREATE events are exactly
# the committed rows, each once.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest;
use StreamCheck;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = audit_node('writer_crash');
my $db   = 'postgres';

# The test framework turns crash restarts off; a crash of the writer must
# be followed by the postmaster's crash recovery here.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;

$node->safe_psql(
	$db, q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id text PRIMARY KEY, phase text NOT NULL, client int, i int);
	SELECT activity_audit.track('t');
});

###########################################################################
# helpers
###########################################################################

# writer_status() as a hash ref.
sub writer_status
{
	return AuditTest::writer_status($node, $db);
}

# One query through psql -c; undef if it fails (server down or restarting:
# poll_query_until feeds psql through stdin, which dies on a broken pipe
# when the connection is refused).
sub try_query
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[
				$node->installed_command('psql'), '-XAtq', '-d',
				$node->connstr($db), '-c', $sql
			],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout(30));
	};
	return undef unless $ok;
	chomp $out;
	return $out;
}

# Wait until the writer runs (and, if given, is not the process $old_pid).
sub wait_for_writer
{
	my ($old_pid, $what) = @_;
	my $cond = 'pid IS NOT NULL' . (defined $old_pid ? " AND pid <> $old_pid" : '');
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	my $r;
	while (time < $deadline)
	{
		$r = try_query("SELECT $cond FROM activity_audit.writer_status()");
		last if defined $r && $r eq 't';
		usleep(100_000);
	}
	ok(defined $r && $r eq 't', "$what: writer running");
}

sub flush_ok
{
	my ($what) = @_;
	is($node->safe_psql($db, q{SELECT activity_audit.flush('60s')}),
		't', "$what: flush() returns true");
}

# Ids of the committed rows of a phase (all phases if undef), sorted.
sub table_ids
{
	my ($phase) = @_;
	my $where = defined $phase ? "WHERE phase = '$phase'" : '';
	my $out = $node->safe_psql($db, "SELECT id FROM t $where ORDER BY id COLLATE \"C\"");
	return [ grep { $_ ne '' } split /\n/, $out ];
}

# The whole stream, validated: seq 1..N, chain, complete lines.  One assertion.
sub stream
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $events = stream_ok($node, "$what: stream complete, seq 1..N, chain valid");
	return $events;
}

# The CREATE events of table t for a phase (all if undef), in stream order.
sub creates
{
	my ($events, $phase) = @_;
	return [
		grep {
			     ($_->{table} // '') eq 't'
			  && ($_->{event_type} // '') eq 'CREATE'
			  && (!defined $phase || ($_->{instance_repr}{phase} // '') eq $phase)
		} @$events
	];
}

# Exact checks of a phase: delivered ids == committed ids, no duplicate.
sub check_exact
{
	my ($events, $phase, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $committed = table_ids($phase);
	my $delivered = creates($events, $phase);
	my %seen;
	my @dups = grep { $seen{$_}++ } map { $_->{instance_id} } @$delivered;
	is(scalar(@dups), 0, "$what: no instance_id delivered twice")
	  or diag("duplicates: @dups[0 .. ($#dups < 9 ? $#dups : 9)]");
	is(scalar(@$delivered), scalar(@$committed),
		"$what: delivered CREATE events (" . scalar(@$delivered)
		  . ") == committed rows (" . scalar(@$committed) . ")");
	my @d = sort map { $_->{instance_id} } @$delivered;
	my %c = map { $_ => 1 } @$committed;
	my @missing = grep { !$seen{$_} } @$committed;
	my @extra   = grep { !$c{$_} } @d;
	ok(!@missing && !@extra, "$what: delivered ids are exactly the committed ids")
	  or diag("committed, not delivered: @missing[0 .. ($#missing < 9 ? $#missing : 9)]\n"
		  . "delivered, not committed: @extra[0 .. ($#extra < 9 ? $#extra : 9)]");
	return $delivered;
}

# Stream-wide facts: every event of t is a CREATE of a committed row, each
# once, and commit LSNs never go backwards.
sub check_global
{
	my ($events, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	check_exact($events, undef, "$what (whole stream)");
	is(scalar(grep { ($_->{table} // '') ne 't' || ($_->{event_type} // '') ne 'CREATE' } @$events),
		0, "$what: the stream has no other event");
	my $bad;
	for my $k (1 .. $#$events)
	{
		if (lsn_cmp($events->[ $k - 1 ]{lsn}, $events->[$k]{lsn}) > 0)
		{
			$bad = "seq $events->[$k]{seq}: lsn $events->[$k]{lsn} < $events->[$k-1]{lsn}";
			last;
		}
	}
	ok(!defined $bad, "$what: commit lsn never decreases along the stream")
	  or diag($bad);
}

sub lsn_cmp
{
	my ($x, $y) = @_;
	my ($ah, $al) = map { hex } split m{/}, $x;
	my ($bh, $bl) = map { hex } split m{/}, $y;
	return $ah <=> $bh || $al <=> $bl;
}

# Each client commits its transactions one after the other, so its rows
# must appear in the stream in increasing i.
sub check_client_order
{
	my ($delivered, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my %last;
	my $bad;
	foreach my $e (@$delivered)
	{
		my $r = $e->{instance_repr};
		if (defined $last{ $r->{client} } && $r->{i} < $last{ $r->{client} })
		{
			$bad = "client $r->{client}: i $r->{i} after i $last{$r->{client}} (seq $e->{seq})";
			last;
		}
		$last{ $r->{client} } = $r->{i};
	}
	ok(!defined $bad, "$what: each client's rows in its commit order") or diag($bad);
}

# A psql script of $n small transactions for one client: each inserts one
# to three rows and commits; every 7th is rolled back instead.
sub client_script
{
	my ($phase, $client, $n, $async) = @_;
	my $path = $node->basedir . "/${phase}_$client.sql";
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh "SET synchronous_commit = off;\n" if $async;
	for my $i (1 .. $n)
	{
		my $rows = 1 + $i % 3;
		print $fh "BEGIN;\n";
		for my $r (1 .. $rows)
		{
			print $fh "INSERT INTO t VALUES ('$phase/$client/$i/$r', '$phase', $client, $i);\n";
		}
		print $fh ($i % 7 == 0 ? "ROLLBACK;\n" : "COMMIT;\n");
	}
	close($fh);
	return $path;
}

# Start a client in the background running its script.
sub start_client
{
	my ($phase, $client, $async) = @_;
	my $script = client_script($phase, $client, 20000, $async);
	my ($out, $err) = ('', '');
	local %ENV = %ENV;
	delete $ENV{PGAPPNAME};
	my $h = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr($db), '-f', $script
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(120));
	return { h => $h, out => \$out, err => \$err, name => "$phase client $client" };
}

# After the crash: the clients must end (their connections are gone).
sub finish_client
{
	my ($c) = @_;
	eval { $c->{h}->finish; };
	note("$c->{name}: exit " . ($c->{h}->result // 'undef') . "; stderr: ${$c->{err}}");
}

sub client_running
{
	my ($c) = @_;
	return $c->{h}->pumpable;
}

# Every server process of the node now: backends, workers, aux processes.
sub server_pids
{
	return grep { /^\d+$/ } split /\n/,
	  $node->safe_psql($db, 'SELECT pid FROM pg_stat_activity');
}

###########################################################################
# (1) basic delivery
###########################################################################

# Session A starts first but commits last.
my $sa = $node->background_psql($db);
$sa->query_safe(q{BEGIN; INSERT INTO t VALUES ('basic/a1', 'basic', 0, 1)});

$node->safe_psql($db,
	q{INSERT INTO t VALUES ('basic/1', 'basic', 0, 1), ('basic/2', 'basic', 0, 2), ('basic/3', 'basic', 0, 3)});
$node->safe_psql($db,
	q{BEGIN; INSERT INTO t VALUES ('basic/rb1', 'basic', 0, 4); INSERT INTO t VALUES ('basic/rb2', 'basic', 0, 5); ROLLBACK;});
$node->safe_psql(
	$db, q{
	BEGIN;
	INSERT INTO t VALUES ('basic/4', 'basic', 0, 6);
	SAVEPOINT s;
	INSERT INTO t VALUES ('basic/sp1', 'basic', 0, 7);
	SAVEPOINT s2;
	INSERT INTO t VALUES ('basic/sp2', 'basic', 0, 8);
	ROLLBACK TO SAVEPOINT s;
	INSERT INTO t VALUES ('basic/5', 'basic', 0, 9);
	SAVEPOINT s3;
	INSERT INTO t VALUES ('basic/6', 'basic', 0, 10);
	RELEASE SAVEPOINT s3;
	COMMIT;
});
# an error undoes the statement's row too
my ($ret) = $node->psql($db,
	q{INSERT INTO t VALUES ('basic/err', 'basic', 0, 11), ('basic/1', 'basic', 0, 12)});
isnt($ret, 0, 'basic: duplicate-key insert fails');
$node->safe_psql($db, q{INSERT INTO t VALUES ('basic/7', 'basic', 0, 13)});

$sa->query_safe(q{INSERT INTO t VALUES ('basic/a2', 'basic', 0, 2); COMMIT});
$sa->quit;

my @basic_order =
  qw(basic/1 basic/2 basic/3 basic/4 basic/5 basic/6 basic/7 basic/a1 basic/a2);

flush_ok('basic');
my $events = stream('basic');
is_deeply([ map { $_->{instance_id} } @$events ],
	\@basic_order,
	'basic: the stream holds exactly the committed rows, in commit order');
is_deeply([ map { $_->{seq} } @$events ], [ 1 .. 9 ], 'basic: seq 1..9');
is($events->[0]{prev_hash}, '0' x 64, 'basic: first prev_hash is 64 zeros');
is_deeply(
	[ map { $_->{instance_repr}{id} } @$events ],
	\@basic_order, 'basic: instance_repr matches instance_id');

# events of one transaction share commit lsn and txid, different
# transactions do not
is( join(' ', map { ($_->{lsn} // '') eq ($events->[0]{lsn} // '-') ? 1 : 0 } @$events[ 0 .. 3 ]),
	'1 1 1 0', 'basic: one commit lsn per transaction');
# (undefined values must not compare equal: the stream may be short)
sub field { my ($k, $f) = @_; return $events->[$k]{$f} // "missing $f of event $k"; }
is(field(3, 'lsn'),  field(5, 'lsn'),  'basic: subtransaction rows carry the top-level commit');
is(field(3, 'txid'), field(5, 'txid'), 'basic: subtransaction rows carry the top-level txid');
is(field(7, 'txid'), field(8, 'txid'), 'basic: session A rows share a txid');
isnt(field(6, 'txid'), field(7, 'txid'), 'basic: session A is another transaction');
check_global($events, 'basic');

my $st = writer_status();
ok(defined $st->{pid}, 'basic: writer_status().pid is not null');
is($st->{events_delivered}, 9, 'basic: writer_status().events_delivered == 9');
ok(defined $st->{lag_bytes} && $st->{lag_bytes} < 65536,
	"basic: lag after flush is small ($st->{lag_bytes} bytes)");
ok($node->poll_query_until($db, 'SELECT lag_bytes = 0 FROM activity_audit.writer_status()'),
	'basic: lag reaches 0 when idle');
ok(!defined $st->{last_error}, 'basic: no last_error');
my $cf = $st->{current_file};
ok(defined $cf && (-f $cf || -f $node->data_dir . "/$cf"),
	'basic: current_file names an existing file')
  or diag('current_file: ' . ($st->{current_file} // 'null'));
my $size = 0;
$size += -s $_ foreach stream_files(stream_dir($node));
is($st->{bytes_written}, $size, 'basic: bytes_written == size of the stream files');

###########################################################################
# (2) clean restart in the middle
###########################################################################

$node->safe_psql($db,
	"INSERT INTO t SELECT 'restart/' || g, 'restart', 0, g FROM generate_series(1, 20) g");
# an open transaction that the restart aborts
my $sb = $node->background_psql($db, on_error_stop => 0);
$sb->query_safe(q{BEGIN; INSERT INTO t VALUES ('restart/open', 'restart', 9, 0)});
# committed right before the restart, maybe not yet delivered
$node->safe_psql($db, "INSERT INTO t VALUES ('restart/21', 'restart', 0, 21)");
my $old_pid = writer_status()->{pid};
$node->restart;
eval { $sb->quit; };
wait_for_writer($old_pid, 'restart');

$node->safe_psql($db,
	"INSERT INTO t SELECT 'restart/' || g, 'restart', 0, g FROM generate_series(22, 30) g");
$node->safe_psql($db, "INSERT INTO t VALUES ('restart/31', 'restart', 0, 31)");
flush_ok('restart');
$events = stream('restart');
is(scalar(@$events), 9 + 31, 'restart: 40 events in the stream');
is_deeply(
	[ map { $_->{instance_id} } @{ creates($events, 'restart') } ],
	[ map { "restart/$_" } 1 .. 31 ],
	'restart: the restart phase rows, each once, in order, none of the aborted one');
check_global($events, 'restart');

###########################################################################
# (3) and (4): crashes under concurrent commits
###########################################################################

# One crash round: two clients commit small transactions (client 2 with
# synchronous_commit = off); once the phase has $min_rows rows, $kind is
# 'postmaster' (kill -9 of the postmaster, then start) or 'writer' (kill -9
# of the writer; the postmaster reinitializes by itself).  Then the stream
# must hold exactly the committed rows of the phase, each once.
sub crash_round
{
	my ($phase, $kind, $min_rows) = @_;

	my @clients = (start_client($phase, 1, 0), start_client($phase, 2, 1));
	ok( $node->poll_query_until(
			$db,
			"SELECT count(DISTINCT client) = 2 AND count(*) >= $min_rows FROM t WHERE phase = '$phase'"
		),
		"$phase: both clients commit");
	my $log_offset = -s $node->logfile;
	my $old_pid    = writer_status()->{pid};
	ok(defined $old_pid, "$phase: writer pid known");
	my @pids = server_pids();
	ok(client_running($_), "$phase: $_->{name} still running at the kill") foreach @clients;

	if ($kind eq 'postmaster')
	{
		$node->kill9;
		# the old server processes must be gone before a new postmaster
		my $deadline = time + 30;
		usleep(50_000) while time < $deadline && grep { kill(0, $_) } @pids;
		is(scalar(grep { kill(0, $_) } @pids), 0,
			"$phase: every old server process is gone");
		finish_client($_) foreach @clients;
		$node->start;
		wait_for_writer(undef, $phase);
	}
	else
	{
		is(kill('KILL', $old_pid), 1, "$phase: SIGKILL sent to the writer (pid $old_pid)");
		finish_client($_) foreach @clients;
		wait_for_writer($old_pid, $phase);
		ok( $node->log_contains(
				qr/all server processes terminated; reinitializing/, $log_offset),
			"$phase: the postmaster went through crash recovery");
	}
	flush_ok($phase);

	my $events    = stream($phase);
	my $delivered = check_exact($events, $phase, $phase);
	cmp_ok(scalar(@$delivered), '>=', $min_rows, "$phase: rows were committed before the crash");
	check_client_order($delivered, $phase);
	check_global($events, $phase);

	# delivery goes on normally afterwards
	$node->safe_psql($db, "INSERT INTO t VALUES ('$phase/after', '$phase', 0, 0)");
	flush_ok("$phase after");
	$events = stream("$phase after");
	is(@$events ? $events->[-1]{instance_id} : undef,
		"$phase/after", "$phase: a commit after recovery is delivered last");
	check_global($events, "$phase after");
	my $st = writer_status();
	ok(!defined $st->{last_error}, "$phase: no last_error")
	  or diag("last_error: $st->{last_error}");
}

# (3) kill -9 of the postmaster, (4) kill -9 of the writer; each twice,
# at different points of the load.  Small files from here on, so crashes
# also hit the stream while it rotates, and the chain must continue across
# files.
$node->append_conf('postgresql.conf', "audit.rotation_size = '64kB'");
$node->reload;
crash_round('pm',  'postmaster', 400);
crash_round('wr',  'writer',     400);
crash_round('pm2', 'postmaster', 50);
crash_round('wr2', 'writer',     1500);
# (the writer rotates at most once a second: file names have 1 s resolution)
cmp_ok(scalar(stream_files(stream_dir($node))), '>=', 3, 'the stream spans several files');

$node->stop;
done_testing();

# 045_status_retained.pl: writer_status() says what holds the WAL.
#
# An ordinary role's BEGIN; INSERT ...; PREPARE TRANSACTION 'p1' left for
# good holds the WAL from its first event on without bound, while lag_bytes
# stays small (everything committed is delivered).  writer_status() names
# it: oldest_xact is its xid8 (as txid_current() gave it, epoch included),
# oldest_xact_gid 'p1', oldest_xact_age grows from its PREPARE; and
# retained_bytes (the WAL the writer's slot keeps) grows with other WAL.
# Past audit.retained_warning (here 1MB) the server log gets exactly one
# WARNING naming the transaction and what to do, however long it stays
# past; COMMIT PREPARED delivers its events, clears oldest_xact*, lets the
# slot move on, and the log says once that the WAL kept is below the limit
# again.  An open (not prepared) transaction is shown with no gid and its
# age from its first event.  last_seq and last_hash are the seq and hash of
# the file's last line.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT file_lines wait_log);
use StreamCheck;

my $node = audit_node('retained',
	conf => "max_prepared_transactions = 4\naudit.retained_warning = '1MB'\n");

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE ROLE app LOGIN;
	GRANT CREATE ON SCHEMA public TO app;
	SET ROLE app;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	RESET ROLE;
	SELECT activity_audit.track('t');
	CREATE TABLE filler (x text);
	});

# writer_status() columns as a hash ref (NULL: undef)
sub status
{
	my @cols = qw(lag_bytes pending_xacts last_seq last_hash retained_bytes
	  oldest_xact oldest_xact_gid oldest_age_s);
	my $row = $node->safe_psql(
		'postgres', q{
		SELECT lag_bytes, pending_xacts, last_seq, last_hash, retained_bytes,
		       oldest_xact, oldest_xact_gid,
		       extract(epoch FROM oldest_xact_age)
		  FROM activity_audit.writer_status()});
	my %h;
	@h{@cols} = map { $_ eq '' ? undef : $_ } split /\|/, $row, -1;
	return \%h;
}

# the seq and hash of the stream's last line
sub last_line
{
	my @lines = map { file_lines($_) } stream_files(stream_dir($node));
	my ($seq, $hash) = $lines[-1] =~ /"seq":([0-9]+),.*"hash":"([0-9a-f]{64})"\}\n\z/;
	return ($seq, $hash);
}

# Before the first event the stream has no head.
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'flushed');
my $st = status();
is($st->{last_seq},    undef, 'no event yet: last_seq is null');
is($st->{last_hash},   undef, 'no event yet: last_hash is null');
is($st->{oldest_xact}, undef, 'no open transaction: oldest_xact is null');
ok(defined $st->{retained_bytes} && $st->{retained_bytes} >= 0,
	'retained_bytes is a number');

$node->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'one'), (2, 'two')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'two events flushed');
my ($seq, $hash) = last_line();
$st = status();
is($st->{last_seq},  $seq,  "last_seq is the file's last seq ($seq)");
is($st->{last_hash}, $hash, "last_hash is the file's last hash");

###########################################################################
# A prepared transaction with events, left open
###########################################################################
my $offset = -s $node->logfile;
my $xid = $node->safe_psql(
	'postgres', q{
	SET ROLE app;
	BEGIN;
	INSERT INTO t VALUES (10, 'prepared');
	SELECT txid_current();
	PREPARE TRANSACTION 'p1';
	});
my $t_prepared = time;
$node->poll_query_until('postgres',
	q{SELECT oldest_xact IS NOT NULL FROM activity_audit.writer_status()})
  or die 'the prepared transaction did not show';
$st = status();
is($st->{oldest_xact},     $xid, "oldest_xact is the prepared transaction ($xid)");
is($st->{oldest_xact_gid}, 'p1', 'oldest_xact_gid is its name');
ok(defined $st->{oldest_age_s} && $st->{oldest_age_s} >= 0,
	"oldest_xact_age is set ($st->{oldest_age_s} s)");
is($st->{pending_xacts}, 1, 'one pending transaction');
my $retained0 = $st->{retained_bytes};

# other WAL: the slot keeps it all, lag stays small
foreach (1 .. 3)
{
	$node->safe_psql('postgres',
		q{INSERT INTO filler SELECT repeat('x', 100) FROM generate_series(1, 5000); SELECT pg_switch_wal()});
}
$node->safe_psql('postgres', 'CHECKPOINT');
usleep(1_200_000);    # the writer looks at its slot once a second
usleep(100_000) while time - $t_prepared < 2;
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'flush() is true: nothing committed waits');
$st = status();
cmp_ok($st->{retained_bytes}, '>', $retained0 + 2 * 16 * 1024 * 1024,
	"retained_bytes grew with the other WAL ($retained0 -> $st->{retained_bytes})");
cmp_ok($st->{lag_bytes}, '<', 1024 * 1024, "while lag_bytes stays small ($st->{lag_bytes})");
cmp_ok($st->{oldest_age_s}, '>=', 1.5, "oldest_xact_age grows ($st->{oldest_age_s} s)");
is($st->{oldest_xact}, $xid, 'still the same oldest_xact');
is( $node->safe_psql(
		'postgres', q{
		SELECT s.retained_bytes <= pg_current_wal_insert_lsn() - r.restart_lsn
		  FROM activity_audit.writer_status() s, pg_replication_slots r
		 WHERE r.slot_name = 'activity_audit'}),
	't',
	'retained_bytes is at most the insert position minus the slot\'s restart_lsn');

ok( wait_log(
		$node,
		qr/WARNING: .*replication slot keeps .* of WAL, more than audit\.retained_warning \(1024 kB\)\n.*DETAIL: .*\Q$xid\E, prepared as "p1"/,
		$offset, 10),
	'a WARNING names the prepared transaction past audit.retained_warning');
like(slurp_file($node->logfile, $offset), qr/HINT: .*COMMIT PREPARED or ROLLBACK PREPARED/,
	'its hint says what to do');

# more WAL, more loops of the writer: no second WARNING
$node->safe_psql('postgres', q{SELECT pg_switch_wal(); CHECKPOINT});
usleep(2_500_000);
my @warnings = slurp_file($node->logfile, $offset) =~ /more than audit\.retained_warning/g;
is(scalar @warnings, 1, 'one WARNING per crossing, not one per loop');

###########################################################################
# COMMIT PREPARED delivers and clears it
###########################################################################
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{COMMIT PREPARED 'p1'});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'flushed after COMMIT PREPARED');
$st = status();
is($st->{oldest_xact},     undef, 'COMMIT PREPARED: oldest_xact is null');
is($st->{oldest_xact_gid}, undef, 'COMMIT PREPARED: oldest_xact_gid is null');
is($st->{oldest_age_s},    undef, 'COMMIT PREPARED: oldest_xact_age is null');
($seq, $hash) = last_line();
is($seq, 3, 'the prepared event is delivered as seq 3');
is($st->{last_seq},  $seq,  'last_seq follows');
is($st->{last_hash}, $hash, 'last_hash follows');
$node->safe_psql('postgres', 'CHECKPOINT');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT retained_bytes < 1024 * 1024 FROM activity_audit.writer_status()}),
	'the slot moves on: retained_bytes is small again');
ok(wait_log($node, qr/LOG: .*no more than audit\.retained_warning \(1024 kB\) again/, $offset, 10),
	'the log says once that it is below the limit again');

###########################################################################
# An open transaction that is not prepared: no gid, age from its first event
###########################################################################
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe(q{INSERT INTO t VALUES (20, 'open')});
my $xid2 = $bg->query_safe('SELECT txid_current()');
$node->poll_query_until('postgres',
	q{SELECT oldest_xact IS NOT NULL FROM activity_audit.writer_status()})
  or die 'the open transaction did not show';
sleep(1);
$st = status();
is($st->{oldest_xact},     $xid2, 'an open transaction: oldest_xact is its xid');
is($st->{oldest_xact_gid}, undef, 'an open transaction: no gid');
cmp_ok($st->{oldest_age_s}, '>=', 0.9, "an open transaction: its age from its first event ($st->{oldest_age_s} s)");
$bg->query_safe('COMMIT');
$bg->quit;
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'flushed');
is(status()->{oldest_xact}, undef, 'committed: oldest_xact is null');
my $events = stream_ok($node, 'the stream is valid');
is(scalar @$events, 4, 'four events, once each');

$node->stop;
done_testing();

# 028_slot_reserve.pl: the writer's slot is created the way PostgreSQL
# creates one, and a new slot never skips what the stream has not got.
#
# (1) A new slot reserves WAL as pg_create_physical_replication_slot()
#     does (ReplicationSlotReserveWal: from the redo pointer, which a
#     concurrent checkpoint cannot remove), not from a position set by hand.
# (2) The data directory comes back without the slot (restored without
#     pg_replslot, or the slot dropped) while events were committed but not
#     delivered, and their WAL is still there: they are delivered, exactly
#     once, instead of being skipped from wherever the new slot starts.
# (3) The same with the WAL gone: the writer does not skip silently but
#     writes a gap line (reason "slot_missing") from the stream's last
#     delivered commit to the oldest WAL there is, and goes on.
#
# The file sink is made to fail (as in 012) so that events stay undelivered
# while the server is stopped; the test must run as the server's (non-root)
# OS user, since root ignores file permissions.

use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log event_ids);
use StreamCheck;

plan skip_all => 'root ignores file permissions' if $> == 0;

my $node = audit_node('slot_reserve', conf => q{
audit.rotation_size = '1kB'
checkpoint_timeout = '1h'
});
my $dir = stream_dir($node);

sub sql
{
	return $node->safe_psql('postgres', $_[0]);
}

# Commit events that the file sink cannot take, then stop the server and
# take the writer's slot away, as a restore without pg_replslot would.
sub undelivered_then_stop_without_slot
{
	my ($from, $to, $more_wal) = @_;
	chmod(0500, $dir) or die "chmod $dir: $!";
	usleep(1_100_000);    # the next commit needs a new file
	sql("INSERT INTO t SELECT g, 'undelivered' FROM generate_series($from, $to) g");
	is(sql(q{SELECT activity_audit.flush('2s')}), 'f',
		"events $from..$to wait for the sink");
	for (1 .. $more_wal)
	{
		sql(q{CREATE TABLE IF NOT EXISTS filler (x text);
			  INSERT INTO filler VALUES ('x'); SELECT pg_switch_wal();});
	}
	$node->stop('fast');
	rmtree($node->data_dir . '/pg_replslot/activity_audit');
	ok(!-e $node->data_dir . '/pg_replslot/activity_audit', 'the slot is gone');
	chmod(0700, $dir) or die "chmod $dir: $!";
}

###########################################################################
# (1) A new slot reserves WAL from the redo pointer
###########################################################################
ok(wait_log($node, qr/created replication slot "activity_audit" at/, 0, 30),
	'the writer created its slot');
my ($created) =
  slurp_file($node->logfile) =~ /created replication slot "activity_audit" at (\S+)/;
is($created, sql('SELECT redo_lsn FROM pg_control_checkpoint()'),
	'the new slot reserved WAL from the last checkpoint\'s redo pointer');
is( sql(q{SELECT wal_status FROM pg_replication_slots
		   WHERE slot_name = 'activity_audit'}),
	'reserved', 'the new slot keeps WAL');

sql(q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT g, repeat('x', 400) FROM generate_series(1, 3) g;
});
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'first events delivered');

###########################################################################
# (2) Restored without the slot, the WAL still there
###########################################################################
undelivered_then_stop_without_slot(10, 12, 0);
my $log_offset = -s $node->logfile;
$node->start;
is(sql(q{SELECT activity_audit.flush('30s')}), 't',
	'without its slot the writer catches up');
my $events = stream_ok($node, 'stream valid');
is_deeply(event_ids($events), [ 1, 2, 3, 10, 11, 12 ],
	'the events committed before the restart are delivered, once, no gap');
unlike(slurp_file($node->logfile, $log_offset), qr/lost WAL/,
	'no loss reported: the WAL was there');
is( sql(q{SELECT wal_status FROM pg_replication_slots
		   WHERE slot_name = 'activity_audit'}),
	'reserved', 'a new slot keeps WAL');

###########################################################################
# (3) Restored without the slot, the WAL gone
###########################################################################
my $last_lsn = $events->[-1]{lsn};
undelivered_then_stop_without_slot(20, 22, 3);
my ($redo_file) = `pg_controldata -D ${\$node->data_dir}` =~
  /^Latest checkpoint's REDO WAL file:\s+(\S+)$/m;
my $waldir = $node->data_dir . '/pg_wal';
opendir(my $dh, $waldir) or die "opendir $waldir: $!";
my @old = grep { /^[0-9A-F]{24}\z/ && $_ lt $redo_file } readdir($dh);
closedir($dh);
unlink("$waldir/$_") or die "unlink $_: $!" foreach @old;
cmp_ok(scalar @old, '>', 0, 'the WAL before the restore point is gone');

$log_offset = -s $node->logfile;
$node->start;
sql(q{INSERT INTO t SELECT g, 'after' FROM generate_series(30, 32) g});
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'delivery goes on');
$events = stream_ok($node, 'stream valid with the gap line');
is_deeply(event_ids($events), [ 1, 2, 3, 10, 11, 12, 'gap', 30, 31, 32 ],
	'a gap line where the events were lost, then the later events, once');
my ($gap) = grep { $_->{name} eq 'audit.gap' } @$events;
is($gap->{reason}, 'slot_missing', 'gap line: reason slot_missing');
is($gap->{lost_from_lsn}, $last_lsn,
	'gap line: lost from the last delivered commit');
ok(wait_log($node, qr/WARNING: .*activity_audit writer lost WAL from \Q$last_lsn\E to \Q$gap->{lost_to_lsn}\E/,
		$log_offset, 5),
	'the loss is reported with its range');
like(writer_status($node)->{last_error} // '', qr/slot_missing/,
	'writer_status().last_error says so');
ok( wait_log($node,
		qr/created replication slot "activity_audit" at \Q$gap->{lost_to_lsn}\E/,
		$log_offset, 5),
	'the new slot keeps the WAL from where reading resumed');
is( sql(q{SELECT wal_status FROM pg_replication_slots
		   WHERE slot_name = 'activity_audit'}),
	'reserved', 'and it is a sound slot');
like(sql(q{SELECT ok || ' ' || detail FROM activity_audit.verify()}),
	qr/^true .*events were lost: 1 gap, at seq 7 \(WAL \Q$last_lsn\E to/,
	'verify(): ok, one gap at seq 7');

done_testing();

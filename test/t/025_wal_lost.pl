# 025_wal_lost.pl: the WAL the writer still needs is gone.
#
# (1) max_slot_wal_keep_size: the file sink fails (an unwritable directory,
#     as in 012) while events are committed; more WAL and a checkpoint
#     invalidate the writer's slot and remove the segments that hold them.
#     The writer must say so (a WARNING naming the lost LSN range,
#     writer_status().last_error), stay alive, write exactly one gap line
#     ("name":"audit.gap", "event_type":"WAL_LOST") naming the range, and
#     deliver every event committed after the oldest WAL there is, exactly
#     once, with an intact chain.  verify() and activity_audit_verify stay
#     ok and say where events were lost; log_stream() returns the gap line;
#     the writer's slot is valid again and keeps WAL.
# (2) Segments removed while the server is down, the slot itself valid
#     (what a pg_resetwal or a clean-up by hand does): this used to be a
#     crash loop, "requested WAL segment ... has already been removed".  Now
#     a second gap line (reason "wal_removed"), and delivery goes on.
# (3) A crash right after that gap line, with the slot still where it was
#     (its state file put back): the stream's last line says the loss is
#     recorded, so it is neither reported nor written again.
# (4) A spilled open transaction whose WAL is lost: past audit.writer_memory
#     its events are not in the writer's memory but to be read back from
#     the WAL at its commit; its first event holds the slot, and
#     max_slot_wal_keep_size invalidates the slot while it stays open.
#     The loss is reported as for (1) (a gap line, reason
#     "slot_invalidated", whose range covers the transaction's first
#     events); at its commit the transaction is delivered with the events
#     the remaining WAL holds, after the gap line, in order, once each --
#     never partly without a gap line.
#
# Segments of 1 MB keep the test small.  The test must run as the server's
# (non-root) OS user: root ignores file permissions.

use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log event_ids);
use StreamCheck;

plan skip_all => 'root ignores file permissions' if $> == 0;

my $node = audit_node(
	'wal_lost',
	extra => ['--wal-segsize=1'],
	conf => q{
# full WAL format: every event that remains after a loss is whole (with
# compact, rows whose header was lost cannot be put together: README)
audit.wal_format = full
wal_keep_size = 0
max_slot_wal_keep_size = '3MB'
min_wal_size = '2MB'
max_wal_size = '64MB'
checkpoint_timeout = '1h'
audit.rotation_size = '1kB'
});
my $dir = stream_dir($node);

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	CREATE TABLE filler (pad text);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT g, repeat('x', 400) FROM generate_series(1, 3) g;
});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'first events delivered');

sub sql
{
	return $node->safe_psql('postgres', $_[0]);
}

# Fill and switch WAL segments, then checkpoint, so that WAL goes.
sub burn_wal
{
	my ($segments) = @_;
	for (1 .. $segments)
	{
		sql(q{INSERT INTO filler SELECT repeat('f', 100) FROM generate_series(1, 100);
			  SELECT pg_switch_wal();});
	}
	sql('CHECKPOINT');
}

# Make the file sink fail: the next commit needs a new file (rotation_size
# 1kB) that the writer cannot create.
sub break_sink
{
	chmod(0500, $dir) or die "chmod $dir: $!";
	usleep(1_100_000);    # file names have one-second resolution
}

###########################################################################
# (1) The slot is invalidated by max_slot_wal_keep_size
###########################################################################
my $log_offset = -s $node->logfile;
break_sink();
my $lsn0 = sql('SELECT pg_current_wal_insert_lsn()');
my $txid_lost = sql(q{BEGIN;
	INSERT INTO t SELECT g, 'lost' FROM generate_series(10, 12) g;
	SELECT txid_current();
	COMMIT;});
my $lsn_lost = sql('SELECT pg_current_wal_insert_lsn()');
is(sql(q{SELECT activity_audit.flush('2s')}), 'f',
	'the sink fails: events wait');
ok(wait_log($node, qr/WARNING: .*Permission denied/, $log_offset, 30),
	'the sink failure is reported');

burn_wal(6);
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 0 FROM pg_ls_waldir()
		 WHERE name = pg_walfile_name('$lsn_lost')}),
	'the segment that held the undelivered events was removed');
ok( wait_log(
		$node, qr/(terminating process \d+ to release|invalidating) .*slot "activity_audit"/,
		$log_offset, 30),
	'the writer\'s slot was invalidated');

# committed after the loss: these must be delivered
my $lsn_kept = sql('SELECT pg_current_wal_insert_lsn()');
sql(q{INSERT INTO t SELECT g, 'kept' FROM generate_series(20, 22) g});

ok( wait_log(
		$node,
		qr/WARNING: .*activity_audit writer lost WAL from [0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+/,
		$log_offset, 30),
	'a WARNING names the lost LSN range');

chmod(0700, $dir) or die "chmod $dir: $!";
is(sql(q{SELECT activity_audit.flush('30s')}), 't',
	'delivery resumes once the sink works');

my $events = stream_ok($node, 'stream valid: the gap line is a link of the chain');
is_deeply(event_ids($events), [ 1, 2, 3, 'gap', 20, 21, 22 ],
	'the first events, one gap line, then every event committed after the loss, once');
my ($gap) = grep { $_->{name} eq 'audit.gap' } @$events;
is($gap->{event_type}, 'WAL_LOST', 'gap line: event_type WAL_LOST');
is($gap->{level}, 'AUDIT', 'gap line: level AUDIT');
is($gap->{reason}, 'slot_invalidated', 'gap line: reason slot_invalidated');
is($gap->{seq}, 4, 'gap line: its own seq');
is($gap->{lsn}, $gap->{lost_to_lsn}, 'gap line: lsn is where delivery resumed');
is($gap->{committed_at}, $gap->{timestamp}, 'gap line: committed_at is the detection time');
like($gap->{message}, qr/\Q$gap->{lost_from_lsn}\E.*\Q$gap->{lost_to_lsn}\E/,
	'gap line: the message names the range');
is( sql(qq{SELECT '$gap->{lost_from_lsn}'::pg_lsn <= '$lsn0'
		   AND '$gap->{lost_to_lsn}'::pg_lsn >= '$lsn_lost'
		   AND '$gap->{lost_to_lsn}'::pg_lsn <= '$lsn_kept'}),
	't',
	"gap line: lost $gap->{lost_from_lsn}..$gap->{lost_to_lsn} covers the lost events, not the kept ones"
);
is( $gap->{system_identifier},
	sql('SELECT system_identifier FROM pg_control_system()'),
	'gap line: the system identifier of the server that lost the WAL');
is($gap->{timeline}, sql('SELECT timeline_id FROM pg_control_checkpoint()'),
	'gap line: its timeline');
cmp_ok($gap->{txid_upper_bound}, '>', $txid_lost,
	'gap line: txid_upper_bound is past the lost transactions');
cmp_ok($gap->{txid_upper_bound}, '<=', sql('SELECT txid_current()'),
	'gap line: txid_upper_bound was taken when the loss was found');

my $err = writer_status($node)->{last_error};
like($err // '', qr/\Q$gap->{lost_from_lsn}\E.*\Q$gap->{lost_to_lsn}\E/,
	'writer_status().last_error names the lost range');
like($err // '', qr/seq 4/, 'last_error names the gap line');

# verify() and the offline tool: chain intact, the loss noted
my ($ok, $bad, $detail) = split /\|/,
  sql(q{SELECT ok, coalesce(first_bad_seq::text, ''), detail FROM activity_audit.verify()});
is($ok, 't', 'verify(): ok, the chain is intact');
is($bad, '', 'verify(): no first bad seq');
like($detail, qr/events were lost: 1 gap, at seq 4 \(WAL \Q$gap->{lost_from_lsn}\E to \Q$gap->{lost_to_lsn}\E/,
	"verify(): detail names the gap: $detail");

my ($stdout, $stderr);
IPC::Run::run([ 'activity_audit_verify', $dir ], '>', \$stdout, '2>', \$stderr);
is($? >> 8, 0, 'activity_audit_verify: exit 0 (the chain is intact)');
my @warn = $stdout =~ /^(WARNING: .*gap.*)$/mg;
is(scalar @warn, 1, 'activity_audit_verify: one WARNING line for the gap')
  or diag($stdout);
like($warn[0] // '', qr/seq 4: .*\Q$gap->{lost_from_lsn}\E to \Q$gap->{lost_to_lsn}\E/,
	'activity_audit_verify: the WARNING names seq and range');
like($stdout, qr/^RESULT: OK/m, 'activity_audit_verify: RESULT: OK');
my ($tool_gaps) = $stdout =~ /^gaps: (.*)$/m;
like($detail, qr/\Q$tool_gaps\E\z/, 'activity_audit_verify and verify() note the gap alike')
  if defined $tool_gaps;
ok(defined $tool_gaps, 'activity_audit_verify: a "gaps:" summary line');

is( sql(q{SELECT seq || ' ' || event_type FROM activity_audit.log_stream()
		   WHERE event_type = 'WAL_LOST'}),
	'4 WAL_LOST',
	'log_stream() returns the gap line');

# the slot is valid again and keeps WAL
is( sql(q{SELECT restart_lsn IS NOT NULL AND wal_status IN ('reserved', 'extended')
		    FROM pg_replication_slots WHERE slot_name = 'activity_audit'}),
	't',
	'the writer\'s slot is valid again');
my $pid = writer_status($node)->{pid};
sql(q{INSERT INTO t VALUES (23, 'after')});
burn_wal(1);
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'later events delivered');
is( sql(q{SELECT wal_status IN ('reserved', 'extended')
		    FROM pg_replication_slots WHERE slot_name = 'activity_audit'}),
	't',
	'the slot stays valid after a checkpoint');
usleep(1_500_000);
is(writer_status($node)->{pid}, $pid, 'the writer stays up (no restart loop)');
unlike(slurp_file($node->logfile, $log_offset), qr/has already been removed/,
	'the writer never failed on removed WAL');

###########################################################################
# (2) Segments removed while the server is down; the slot stays valid
###########################################################################
# a large event first, so that the next commit needs a new file
sql(q{INSERT INTO t VALUES (24, repeat('x', 1100))});
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'a large event delivered');
$log_offset = -s $node->logfile;
break_sink();
sql(q{INSERT INTO t SELECT g, 'lost 2' FROM generate_series(30, 32) g});
is(sql(q{SELECT activity_audit.flush('2s')}), 'f', 'the sink fails again');
sql(q{INSERT INTO filler VALUES ('x'); SELECT pg_switch_wal();});
$node->stop('fast');

# remove every segment before the shutdown checkpoint's, as a clean-up
# would; the server itself needs none of them
my ($redo_file) = `pg_controldata -D ${\$node->data_dir}` =~
  /^Latest checkpoint's REDO WAL file:\s+(\S+)$/m;
my $waldir = $node->data_dir . '/pg_wal';
opendir(my $dh, $waldir) or die "opendir $waldir: $!";
my @removed = grep { /^[0-9A-F]{24}\z/ && $_ lt $redo_file } readdir($dh);
closedir($dh);
unlink("$waldir/$_") or die "unlink $_: $!" foreach @removed;
cmp_ok(scalar @removed, '>', 0, 'old WAL segments removed by hand');
chmod(0700, $dir) or die "chmod $dir: $!";

# the slot as it is now, still needing the removed WAL, for (3)
my $slot_state = $node->data_dir . '/pg_replslot/activity_audit/state';
my $saved_state = PostgreSQL::Test::Utils::tempdir() . '/slot_state';
copy($slot_state, $saved_state) or die "copy $slot_state: $!";

$log_offset = -s $node->logfile;
$node->start;
ok( wait_log(
		$node, qr/WARNING: .*activity_audit writer lost WAL from ([0-9A-F]+\/[0-9A-F]+)/,
		$log_offset, 30),
	'the second loss is reported');
my ($lost_from_2) = slurp_file($node->logfile, $log_offset) =~
  /activity_audit writer lost WAL from ([0-9A-F]+\/[0-9A-F]+)/;
ok( wait_log(
		$node, qr/recorded the lost WAL from \Q$lost_from_2\E to \S+ as seq 10 /,
		$log_offset, 30),
	'and recorded as seq 10');
unlike(slurp_file($node->logfile, $log_offset), qr/has already been removed/,
	'no "has already been removed" error, no crash loop');

###########################################################################
# (3) A crash after the gap line, before the slot moved past the loss:
#     the stream's last line says the loss is recorded, no second gap line
###########################################################################
$node->stop('immediate');
copy($saved_state, $slot_state) or die "copy $saved_state: $!";
$log_offset = -s $node->logfile;
$node->start;
sql(q{INSERT INTO t SELECT g, 'kept 2' FROM generate_series(40, 42) g});
is(sql(q{SELECT activity_audit.flush('30s')}), 't',
	'after the restarts, delivery goes on');
$events = stream_ok($node, 'stream valid with two gap lines');
is_deeply(event_ids($events), [ 1, 2, 3, 'gap', 20, 21, 22, 23, 24, 'gap', 40, 41, 42 ],
	'one gap line for the second loss, then the events committed after it, once');
my @gaps = grep { $_->{name} eq 'audit.gap' } @$events;
is($gaps[1]{reason}, 'wal_removed', 'second gap line: reason wal_removed');
is($gaps[1]{lost_from_lsn}, $lost_from_2, 'second gap line: the range reported');
unlike(slurp_file($node->logfile, $log_offset), qr/lost WAL from \Q$lost_from_2\E/,
	'the recorded loss is not reported again after the crash');
like(sql(q{SELECT detail FROM activity_audit.verify()}),
	qr/events were lost: 2 gaps, the first at seq 4/,
	'verify(): two gaps noted');

###########################################################################
# (4) A spilled open transaction whose WAL is lost
###########################################################################
sql(q{ALTER SYSTEM SET audit.writer_memory = '64kB'});
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('audit.writer_memory') = '64kB'})
  or die 'audit.writer_memory not 64kB after reload';
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'the writer has reloaded');
my $n_before = scalar(@$events);

$log_offset = -s $node->logfile;
my $big = $node->background_psql('postgres', on_error_stop => 1);
$big->query_safe('BEGIN');
$big->query_safe(q{INSERT INTO t SELECT g, repeat('s', 400) FROM generate_series(1001, 3000) g});
my $big_xid = $big->query_safe('SELECT txid_current()');
my $big_end = $big->query_safe('SELECT pg_current_wal_insert_lsn()');
is(sql(q{SELECT activity_audit.flush('30s')}), 't', 'the writer has read the open transaction');
cmp_ok(writer_status($node)->{spilled_bytes}, '>', 1000 * 400,
	'(4) its events are not in the writer\'s memory');

burn_wal(6);
ok( wait_log(
		$node, qr/(terminating process \d+ to release|invalidating) .*slot "activity_audit"/,
		$log_offset, 30),
	'(4) the slot held by the open transaction was invalidated');
ok( wait_log(
		$node,
		qr/WARNING: .*activity_audit writer lost WAL from [0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+/,
		$log_offset, 30),
	'(4) a WARNING names the lost LSN range');
$big->query_safe(q{INSERT INTO t SELECT g, repeat('s', 400) FROM generate_series(3001, 3200) g});
$big->query_safe('COMMIT');
$big->quit;
is(sql(q{SELECT activity_audit.flush('30s')}), 't', '(4) the transaction\'s commit is delivered');

$events = stream_ok($node, '(4) stream valid');
my @new = @$events[ $n_before .. $#$events ];
is($new[0]{name}, 'audit.gap', '(4) a gap line first');
is($new[0]{reason}, 'slot_invalidated', '(4) gap line: reason slot_invalidated');
# the slot held the transaction's first event, so the loss starts at or
# before it; it ends past the transaction's first rows
is( sql(qq{SELECT '$new[0]{lost_from_lsn}'::pg_lsn < '$big_end'
		   AND '$new[0]{lost_to_lsn}'::pg_lsn >= '$big_end'}),
	't', '(4) gap line: the lost range holds the transaction\'s first rows');
cmp_ok($new[0]{txid_upper_bound}, '>', $big_xid,
	'(4) gap line: txid_upper_bound is past the transaction');
my @ids = map { $_->{instance_id} } @new[ 1 .. $#new ];
my $first = $ids[0] // 0;
is_deeply(\@ids, [ $first .. 3200 ],
	"(4) then the transaction's events the remaining WAL holds ($first..3200), in order, once each");
cmp_ok($first, '>', 1001, '(4) its first events are missing: they were in the lost WAL');
cmp_ok($first, '<=', 3001, '(4) every event after the loss is there');
is(writer_status($node)->{spilled_bytes}, 0, '(4) spilled_bytes 0');

done_testing();

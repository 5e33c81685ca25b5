# 033_signature_reuse.pl: a signature read from the WAL signs nothing else.
#
# Every message is signed with its transaction's id and its own number in
# the transaction; the writer accepts each number once and only rising.
# Here the attacker is the session itself, with what any REPLICATION role
# can read: the WAL bytes of its own open transaction (read from the WAL
# file on disk, as pg_receivewal would stream them).  Inside that
# transaction it emits copies of its genuine messages with
# pg_logical_emit_message(): of a header and row of a rolled-back savepoint,
# and of the header and row of a genuine event.  Without the number check
# the first pair is an event that was rolled back and the second a second
# copy of a real one; with it, all four are rejected, counted and logged,
# and the stream has exactly the genuine event.  The same holds when the
# writer restarts after the savepoint was rolled back: the writer's slot
# holds the WAL back to the transaction's first message (here the only
# thing that holds it: the savepoint's events were dropped), so the restarted
# writer knows the numbers used again.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT stream_texts writer_status);
use StreamCheck;

my $node = audit_node('sigreuse');
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	});

# Our messages of transaction $txid in the WAL on disk, as written, in WAL
# order: [number, text].  Every message is complete in one WAL page unless
# it crosses a page boundary, which the callers avoid by retrying.
sub messages_on_disk
{
	my ($txid) = @_;
	$node->safe_psql('postgres', 'CREATE TEMP TABLE flush_wal ()');  # a commit flushes the WAL
	my @msgs;
	foreach my $f (sort glob($node->data_dir . '/pg_wal/0*'))
	{
		next if $f =~ /\.(partial|history)$/ || -s $f < 1024;
		my $bytes = slurp_file($f);
		while ($bytes =~ /(\{"head":\{[^\x00]*?"sig":"$txid:([0-9]+):[0-9a-f]{16}"\}|\["[^\x00\[]*?"$txid:([0-9]+):[0-9a-f]{16}"\])/g)
		{
			push @msgs, [ $2 // $3, $1 ];
		}
	}
	return @msgs;
}

sub sql_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

sub attack
{
	my ($restart) = @_;
	my $name = $restart ? 'with a writer restart' : 'without restart';
	my $log_offset = -s $node->logfile;
	my $base = $restart ? 100 : 0;

	my $s = $node->background_psql('postgres', on_error_stop => 1);
	$s->query_safe('BEGIN');
	$s->query_safe('SAVEPOINT a');
	$s->query_safe("INSERT INTO t VALUES ($base + 1, 'rolled back')");
	$s->query_safe('ROLLBACK TO SAVEPOINT a');
	my $rolled_back_lsn = $s->query_safe('SELECT pg_current_wal_insert_lsn()');
	my $txid = $s->query_safe('SELECT txid_current()');

	if ($restart)
	{
		# other work commits and the writer saves its slot meanwhile
		$node->safe_psql('postgres', "INSERT INTO t VALUES ($base + 50, 'other')");
		$node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')});
		sleep 2;
		$node->safe_psql('postgres', "INSERT INTO t VALUES ($base + 51, 'other')");
		$node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')});
		ok( $node->safe_psql('postgres',
				"SELECT restart_lsn < '$rolled_back_lsn' FROM pg_replication_slots WHERE slot_name = 'activity_audit'"
			) eq 't',
			"$name: the slot holds the WAL of the open transaction's rolled-back messages");
		my $pid = writer_status($node)->{pid};
		kill 'TERM', $pid or die "cannot signal the writer: $!";
		$node->poll_query_until('postgres',
			"SELECT pid IS NOT NULL AND pid <> $pid FROM activity_audit.writer_status()")
		  or die 'writer did not restart';
	}

	my @rolled = messages_on_disk($txid);
	is(scalar @rolled, 2, "$name: the rolled-back header and row are in the WAL")
	  or diag(explain \@rolled);
	like($rolled[1][1], qr/"rolled back"/, "$name: the rolled-back row");

	$s->query_safe("INSERT INTO t VALUES ($base + 2, 'genuine')");
	my @all = messages_on_disk($txid);
	is(scalar @all, 4, "$name: then the genuine header and row");

	# the copies, verbatim, in the same transaction (forged_rejected counts
	# since the writer started)
	my $rejected_before = writer_status($node)->{forged_rejected};
	$s->query_safe("SELECT pg_logical_emit_message(true, 'activity_audit', "
		  . sql_literal($_->[1]) . ')')
	  foreach @all;
	$s->query_safe('COMMIT');
	$s->quit;
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
		't', "$name: flushed");

	my @texts = grep { /"txid":$txid\}\z/ } stream_texts(stream_dir($node));
	is(scalar @texts, 1, "$name: one event of the transaction delivered");
	like($texts[0], qr/"pad":"genuine"/, "$name: the genuine one");
	is(writer_status($node)->{forged_rejected} - $rejected_before,
		4, "$name: the four copies are counted as rejected");
	my $log = slurp_file($node->logfile, $log_offset);
	my @used = ($log =~ /Its signature was used before/g);
	is(scalar @used, 4, "$name: four rejections in the log name the reuse");
}

attack(0);
attack(1);

my $events = stream_ok($node, 'stream valid (seq, chain)');
is_deeply([ map { $_->{instance_id} } @$events ], [ 2, 150, 151, 102 ],
	'the stream holds the genuine events only, in commit order');

done_testing();

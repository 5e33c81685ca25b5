# 030_txid_epoch.pl: a real event copied into a later transaction that has
# the same 32-bit xid in a later epoch is not delivered.
#
# An event's signature covers the full 64-bit transaction id ("txid"); the
# commit record names only the 32-bit xid.  The writer used to compare the
# low 32 bits, so a copy of a real event (as any REPLICATION role can read
# from the WAL) emitted with pg_logical_emit_message() in a transaction
# whose xid repeats the original's 32 bits, 2^32 transactions later, was
# delivered as genuine.  Here pg_resetwal -e 1 -x X makes the next
# transaction exactly that one without waiting for 4 billion others.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wal_messages stream_texts writer_status);
use StreamCheck;

# full format: the event is one self-contained message to copy
my $node = audit_node('txid_epoch', conf => "audit.wal_format = full\n");
$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	});

# The real event, in transaction X of epoch 0.
my $x = $node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO t VALUES (1, 'one');
	SELECT txid_current();
	COMMIT;});
cmp_ok($x, '<', 2**32, "the real event's transaction $x is in epoch 0");
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'real event delivered');
my @msgs = wal_messages($node);
is(scalar @msgs, 1, 'one real event in the WAL');
like($msgs[0], qr/,"txid":$x,"sig":"$x:1:[0-9a-f]+"\}\z/, 'it is signed for txid X');
my $copy = $msgs[0];
$copy =~ s/'/''/g;

# Next transaction: xid X again, in epoch 1.  The slots point into WAL that
# pg_resetwal discards; the writer makes a new one at the new WAL's start.
$node->stop;
unlink(glob($node->data_dir . '/pg_replslot/*/state'));
rmdir($_) for glob($node->data_dir . '/pg_replslot/*');
command_ok([ 'pg_resetwal', '-e', '1', '-x', $x, $node->data_dir ],
	'pg_resetwal: epoch 1, next xid X');
$node->start;
$node->poll_query_until('postgres',
	q{SELECT pid IS NOT NULL FROM activity_audit.writer_status()})
  or die 'writer did not start';

my $replay = $node->safe_psql('postgres', qq{
	BEGIN;
	SELECT pg_logical_emit_message(true, 'activity_audit', '$copy');
	SELECT txid_current();
	COMMIT;});
my ($replay_txid) = $replay =~ /(\d+)\s*\z/;
is($replay_txid, 2**32 + $x, 'the copy was emitted in xid X of epoch 1');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (2, 'two')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'flushed after the copy');

# pg_resetwal discarded the WAL the writer's slot pointed into: the writer
# records that as a gap line (reason slot_missing) before going on.
my @all = stream_texts(stream_dir($node));
my @gaps = grep { /"name":"audit\.gap"/ } @all;
my @texts = grep { !/"name":"audit\.gap"/ } @all;
is(scalar @gaps, 1, 'the discarded WAL is recorded as one gap line');
is(scalar @texts, 2, 'two events delivered: the real one and the row after the copy');
unlike(join("\n", @texts[1 .. $#texts]), qr/"pad":"one"/,
	'the copy of the first event was not delivered again');
like($texts[-1], qr/"pad":"two"/, 'the genuine later event was delivered');
is(writer_status($node)->{forged_rejected}, 1, 'forged_rejected counts the copy');
stream_ok(stream_dir($node), 'chain intact');
ok( $node->log_contains(
		qr/rejected a message with prefix "activity_audit".*\n.*signed, but for another transaction/),
	'the rejection is in the log');

done_testing();

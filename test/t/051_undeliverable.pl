# Copyright: activity_audit contributors
#
# 051_undeliverable.pl: a signed message that no event can be made of does
# not stop the writer.
#
# Whoever has the event key (a superuser can read it) can sign any text.
# A full event with a raw newline in it, emitted with
# pg_logical_emit_message() and signed with the key by test/unit/sign_v2.c,
# used to make the writer fail on every attempt to deliver its commit
# ("malformed audit event"), for ever: flush() stayed false and no later
# event was delivered.  Now it is reported (a WARNING, forged_rejected,
# writer_status().last_error naming its LSN) and skipped; the commit's other
# events and the later ones are delivered, once each, also after a crash
# and restart, and the restart does not report it again.  A giant unsigned
# message under our prefix (16MB) is rejected the same way without
# stopping anything.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status);
use StreamCheck;

my $top = "$FindBin::RealBin/../..";
my $signer = tempdir(CLEANUP => 1) . '/sign_v2';
my $cc = $ENV{CC} // 'cc';
system($cc, '-O2', '-Wall', "-I$top/src", '-o', $signer,
	"$top/test/unit/sign_v2.c", "$top/src/common/siphash.c") == 0
  or BAIL_OUT('cannot compile test/unit/sign_v2.c');

my $node = audit_node('undeliverable');
my $data = $node->data_dir;
$node->safe_psql('postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, body text);
	SELECT activity_audit.track('t');
	INSERT INTO t VALUES (1, 'before');
});

sub flushed
{
	return $node->safe_psql('postgres', q{SELECT activity_audit.flush('20s')});
}

sub ids
{
	return join ',', map { $_->{instance_id} // 'null' } read_stream($node);
}

is(flushed(), 't', 'the first event is delivered');

# A full event of transaction $txid, signed with number $counter, with a
# raw newline in its message.
sub bad_event
{
	my ($txid, $counter) = @_;
	my $mac = `$signer $data/pg_activity_audit/event_key $txid $counter`;
	chomp $mac;
	$mac =~ /^[0-9a-f]{16}\z/ or die "sign_v2 failed: $mac";
	return
	    '{"timestamp":"2026-01-01T00:00:00.000000Z","level":"AUDIT","name":"audit.model",'
	  . qq{"message":"one line\nAUDIT: another","table":"t","instance_id":"666"}
	  . qq{,"txid":$txid,"sig":"$txid:$counter:$mac"\}};
}

my $s = $node->background_psql('postgres', on_error_stop => 1);
$s->query_safe('BEGIN');
my $txid = $s->query_safe('SELECT txid_current()');
chomp $txid;
$s->query_safe(q{INSERT INTO t VALUES (2, 'same transaction')});
# after the trigger's (numbers only grow), one it does not reach
$s->query_safe(q{SELECT pg_logical_emit_message(true, 'activity_audit', '}
	  . bad_event($txid, 1000000) . q{')});
$s->query_safe('COMMIT');
$s->quit;

my $log_at = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (3, 'after')});
is(flushed(), 't', 'the writer goes on past the signed event it cannot deliver');
is(ids(), '1,2,3', 'the genuine events, of the same commit and after it, once each');
my $st = writer_status($node);
is($st->{forged_rejected}, 1, 'counted in forged_rejected');
like($st->{last_error} // '', qr/^the event at [0-9A-F]+\/[0-9A-F]+ of the commit at [0-9A-F]+\/[0-9A-F]+ is not delivered: It is not one JSON object on one line/,
	'and named in last_error');
my $log = slurp_file($node->logfile);
like($log, qr/WARNING:  activity_audit writer cannot deliver the event at/, 'and in the log');
unlike($log, qr/malformed audit event/, 'no failed attempt to write it');

# a giant message under our prefix, not signed: rejected, nothing stops
$node->safe_psql('postgres',
	q{SELECT pg_logical_emit_message(true, 'activity_audit', repeat('x', 16 * 1024 * 1024))});
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'after the giant')});
is(flushed(), 't', 'a 16MB unsigned message does not stop the writer');
is(writer_status($node)->{forged_rejected}, 2, 'it is counted');

# a crash before any checkpoint: the WAL with both is read again
$node->stop('immediate');
$node->start;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (5, 'after the restart')});
is(flushed(), 't', 'the server starts and the writer delivers');
is(ids(), '1,2,3,4,5', 'every genuine event once, in commit order');
is(writer_status($node)->{forged_rejected}, 0, 'what an earlier run reported is not counted again');
stream_ok($node, 'one valid chain');

$node->stop;
done_testing();

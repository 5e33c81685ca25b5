# 013_forged.pl: messages with the activity_audit prefix that the audit
# trigger did not write are never delivered.
#
# Forgeries made with pg_logical_emit_message(): a transactional message with
# a made-up event, a non-transactional one, and a copy of a real event (taken
# from a test_decoding slot) with one character changed but its "sig" kept.
# None is delivered; writer_status().forged_rejected counts each exactly once
# and the server log has one WARNING for each.  The real events committed
# around them, one of them in the same transaction as a forgery, are
# delivered normally with seq and the chain intact.  A message whose prefix
# merely starts with "activity_audit" is a lookalike (prefixes that do are
# reserved): not delivered, counted and warned about like a forgery.
# Messages with another prefix are not the writer's business: neither
# delivered nor counted nor warned about.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wal_messages stream_texts);
use StreamCheck;

# full format: a real event is one self-contained message to copy
my $node = audit_node('forged', conf => "audit.wal_format = full\n");

$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	});



sub status
{
	my ($col) = @_;
	return $node->safe_psql('postgres',
		"SELECT $col FROM activity_audit.writer_status()");
}

sub sql_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

my $log_offset = -s $node->logfile;

###########################################################################
# A real event to copy
###########################################################################
$node->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'one')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'first event delivered');
my @msgs = wal_messages($node);
is(scalar @msgs, 1, 'one real event in the WAL');
my $real = $msgs[0];
like($real, qr/,"sig":"[0-9]+:1:[0-9a-f]{16}"\}\z/, 'the real event ends with its sig');
like($real, qr/"pad":"one"/, 'the real event has the row');
(my $altered = $real) =~ s/"pad":"one"/"pad":"onE"/;
isnt($altered, $real, 'altered copy differs in one character');
is(length($altered), length($real), 'altered copy has the same length');

###########################################################################
# Forgeries, between and beside real events
###########################################################################
my $forged_tx = '{"event_type":"CREATE"}';
$node->safe_psql(
	'postgres', qq{
	BEGIN;
	INSERT INTO t VALUES (2, 'two');
	SELECT pg_logical_emit_message(true, 'activity_audit', '$forged_tx');
	INSERT INTO t VALUES (3, 'three');
	COMMIT;
	SELECT pg_logical_emit_message(false, 'activity_audit', '{"a":1}');
	SELECT pg_logical_emit_message(true, 'activity_audit', } . sql_literal($altered) . qq{);
	SELECT pg_logical_emit_message(true, 'other', } . sql_literal($real) . qq{);
	SELECT pg_logical_emit_message(false, 'other', '{"a":1}');
	SELECT pg_logical_emit_message(true, 'activity_audit_other', '{"a":1}');
	SELECT pg_logical_emit_message(true, 'activity_aud', '{"a":1}');
	INSERT INTO t VALUES (4, 'four');
	});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'flush returns true');

is(status('forged_rejected'), '4',
	'forged_rejected counts the three forgeries and the lookalike exactly');
is(status('events_delivered'), '4', 'events_delivered counts the four real events');
is(status('last_error IS NULL'), 't', 'no error');

# what the WAL holds: 4 real events and the 2 transactional forgeries
@msgs = wal_messages($node);
is(scalar @msgs, 6, 'the WAL has six transactional activity_audit messages');
my @real = grep { $_ ne $forged_tx && $_ ne $altered } @msgs;
is(scalar @real, 4, 'four of them are real');
foreach (@real)
{
	s/,"sig":"[0-9]+:[0-9]+:[0-9a-f]{16}"\}\z/}/ or die "event without sig: $_";
}

my $events = stream_ok($node, 'stream valid (seq, chain)');
is(scalar @$events, 4, 'four events delivered');
is_deeply([ map { $_->{seq} } @$events ], [ 1 .. 4 ], 'seq 1..4');
is_deeply([ map { $_->{instance_id} } @$events ],
	[ 1, 2, 3, 4 ], 'the real events, in commit order');
is_deeply([ stream_texts(stream_dir($node)) ], \@real,
	'delivered texts are exactly the real events');
is(scalar(grep { /"pad":"onE"/ || /"a":1/ || !/"instance_id"/ } stream_texts(stream_dir($node))),
	0, 'no forged content in the stream');

# one WARNING per forgery and lookalike, none for the other prefixes
my $log = slurp_file($node->logfile, $log_offset);
my @warnings = ($log =~ /^.*WARNING: .*$/mg);
is(scalar @warnings, 4, 'four WARNINGs in the server log')
  or diag(join("\n", @warnings));
is(scalar(grep { /activity_audit/ } @warnings),
	4, 'each WARNING names the activity_audit prefix');
like($log, qr/DETAIL:  Its prefix "activity_audit_other" only begins with "activity_audit"/,
	'the lookalike\'s names its prefix');
unlike($log, qr/AUDIT: \{/, 'nothing went to the server log as an event');

###########################################################################
# Still the same after more real events
###########################################################################
$node->safe_psql('postgres',
	q{UPDATE t SET pad = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'later events delivered');
is(status('forged_rejected'), '4', 'forged_rejected unchanged');
$events = stream_ok($node, 'stream valid after more events');
is(scalar @$events, 6, 'six events delivered');

###########################################################################
# An unchanged copy of a real event, sig and all, in another transaction
###########################################################################
# The contract says a message the trigger did not write is never delivered;
# a replayed copy was not written by the trigger.  The sig covers only the
# event text, so the writer ties the event to its transaction: its "txid"
# must be the top-level xid of the commit that carries it.
$node->safe_psql('postgres',
	q{SELECT pg_logical_emit_message(true, 'activity_audit', } . sql_literal($real) . q{)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'flush after the replay');
$events = stream_ok($node, 'stream valid after the replay');
is(scalar @$events, 6, 'the replayed copy is not delivered');
is(status('forged_rejected'), '5', 'the replayed copy is counted as forged');

$node->stop;
done_testing();

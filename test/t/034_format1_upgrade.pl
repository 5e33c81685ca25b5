# 034_format1_upgrade.pl: after the upgrade from 0.1, the writer delivers
# 0.1's messages written before it, and only those.
#
# Release 0.1 signed an event with the MAC of its txid alone.  To have such
# messages in the WAL as an upgrade leaves them, the server runs for a
# while without the library (so no writer) and the test writes them the way
# 0.1's trigger did: the event JSON ending ,"txid":T,"sig":"<MAC of T>"},
# emitted with pg_logical_emit_message() in transaction T, the MAC made by
# test/unit/sign_v1.c from the server's event key.  The writer's slot keeps
# that WAL.  Then the server starts with the library again, as after
# installing the new release: the writer records where 0.1's messages end
# (pg_activity_audit/format1_until), delivers the two old events in commit
# order between the new ones, and rejects a 0.1-format message written
# after that point, however well signed.  ALTER EXTENSION ... UPDATE goes
# from 0.1 to 0.2.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT stream_texts writer_status);
use StreamCheck;

my $top = "$FindBin::RealBin/../..";
my $signer = tempdir(CLEANUP => 1) . '/sign_v1';
my $cc = $ENV{CC} // 'cc';
system($cc, '-O2', '-Wall', "-I$top/src", '-o', $signer,
	"$top/test/unit/sign_v1.c", "$top/src/common/siphash.c") == 0
  or BAIL_OUT('cannot compile test/unit/sign_v1.c');

my $node = audit_node('format1');
my $data = $node->data_dir;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit VERSION '0.1';
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	INSERT INTO t VALUES (1, 'before');
	});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'the first event is delivered');
ok(-f "$data/pg_activity_audit/format1_until", 'the writer recorded where 0.1 ends');

# An event as 0.1's trigger wrote it, for transaction $txid.
sub v1_event
{
	my ($txid, $id) = @_;
	my $mac = `$signer $data/pg_activity_audit/event_key $txid`;
	chomp $mac;
	$mac =~ /^[0-9a-f]{16}\z/ or die "sign_v1 failed: $mac";
	return
	    '{"timestamp":"2026-01-01T00:00:00.000000Z","level":"AUDIT","name":"audit.model",'
	  . qq{"message":"CREATE event by t (id: $id)","request_id":null,"service_name":"default",}
	  . qq{"model":"t","event_type":"CREATE","instance_id":"$id","instance_repr":{"id":$id,"pad":"0.1"},}
	  . '"user_id":null,"user_info":null,"extra":{},"schema":"public","table":"t","db":"postgres",'
	  . '"db_user":"postgres","application_name":"0.1","client_addr":null,'
	  . qq{"backend_pid":1,"txid":$txid,"sig":"$mac"\}};
}

sub emit_v1
{
	my ($id) = @_;
	my $txid = $node->safe_psql('postgres', 'SELECT txid_current() + 1');
	my $ev = v1_event($txid, $id);
	my $got = $node->safe_psql('postgres', qq{
		BEGIN;
		SELECT pg_logical_emit_message(true, 'activity_audit', '$ev');
		SELECT txid_current();
		COMMIT;});
	my ($used) = $got =~ /(\d+)\s*\z/;
	is($used, $txid, "0.1 event $id emitted in the transaction it names");
	return $ev;
}

# "0.1": the server without the library, and no record of the upgrade yet
$node->stop;
unlink("$data/pg_activity_audit/format1_until") or die;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;
my @old = (emit_v1(101), emit_v1(102));
$node->stop;

# the upgrade: the library again
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'activity_audit'");
$node->start;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (2, 'after')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'flushed after the upgrade');
ok(-f "$data/pg_activity_audit/format1_until", 'the upgrade point is recorded');

# a 0.1 message written now is refused, signature and all
my $rejected = writer_status($node)->{forged_rejected};
my $late = emit_v1(103);
$node->safe_psql('postgres', q{INSERT INTO t VALUES (3, 'last')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'flushed after the late 0.1 message');
is(writer_status($node)->{forged_rejected} - $rejected, 1,
	'the 0.1 message written after the upgrade is rejected');
ok( $node->log_contains(qr/format of release 0\.1 but was written after the upgrade/),
	'the log says why');

my @texts = stream_texts(stream_dir($node));
(my $old0 = $old[0]) =~ s/,"sig":"[0-9a-f]{16}"\}\z/}/;
(my $old1 = $old[1]) =~ s/,"sig":"[0-9a-f]{16}"\}\z/}/;
is(scalar @texts, 5, 'five events delivered');
is($texts[1], $old0, 'the first 0.1 event, exactly as 0.1 wrote it (without "sig")');
is($texts[2], $old1, 'the second 0.1 event');
like($texts[3], qr/"pad":"after"/, 'then the events of this release');
like($texts[4], qr/"pad":"last"/, 'and not the late 0.1 message');
stream_ok(stream_dir($node), 'one chain across the upgrade');

# the SQL side
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'activity_audit'}),
	'0.1', 'the extension is still at 0.1');
$node->safe_psql('postgres', q{ALTER EXTENSION activity_audit UPDATE});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'activity_audit'}),
	'0.3', 'ALTER EXTENSION UPDATE goes to the default version, 0.3');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'updated')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'auditing goes on after the update');
is(scalar(stream_texts(stream_dir($node))), 6, 'six events');

done_testing();

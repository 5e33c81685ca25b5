# 036_receivewal_forgery.pl: a REPLICATION role that streams the WAL with
# pg_receivewal cannot forge an event with the signatures it reads there.
#
# The attacker is an ordinary LOGIN role with REPLICATION, as standbys,
# backup tools and CDC connectors get, that may write to a tracked table
# (PostgreSQL lets PUBLIC call pg_logical_emit_message()).  It streams the
# WAL with pg_receivewal while it holds a transaction open, waits until its
# own genuine header and row have arrived in the streamed segment, and then,
# in the same transaction, emits with our prefix: the header and the row
# verbatim, the row with other content under the row's signature, and a
# whole full-format event under the row's signature.  Before signatures
# were bound to a per-transaction number (0.1 signed the txid alone) each of
# these was delivered as genuine; now the stream holds the genuine event
# only and every copy is counted in forged_rejected and logged.

use strict;
use warnings;

use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT stream_texts writer_status);
use StreamCheck;

my $node = audit_node('rcvwal', conf => "max_wal_senders = 4\n");
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	CREATE ROLE cdc LOGIN REPLICATION;
	GRANT INSERT ON t TO cdc;
	});
is( $node->safe_psql(
		'postgres', q{SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'cdc'}),
	'f', 'the attacker is neither superuser nor bypasses anything');

# pg_receivewal as the REPLICATION role, flushing what it receives.
my $recv_dir = $node->basedir . '/received';
make_path($recv_dir);
my ($out, $err) = ('', '');
my $recv = IPC::Run::start(
	[
		'pg_receivewal', '--no-loop', '--synchronous', '--status-interval=1',
		'-h', $node->host, '-p', $node->port, '-U', 'cdc', '-D', $recv_dir
	],
	'>', \$out, '2>', \$err);

# Messages of transaction $txid in the streamed WAL, [number, text], in
# WAL order.  (A message that crosses a WAL page boundary is split by the
# page header; the statements below are small enough for that to be rare,
# and the wait retries.)
sub streamed_messages
{
	my ($txid) = @_;
	my @msgs;
	foreach my $f (sort glob("$recv_dir/0*"))
	{
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

my $log_offset = -s $node->logfile;
my $s = $node->background_psql('postgres', on_error_stop => 1);
$s->query_safe('SET ROLE cdc');
$s->query_safe('BEGIN');
$s->query_safe(q{INSERT INTO t VALUES (1, 'genuine')});
my $txid = $s->query_safe('SELECT txid_current()');

# Another session's commit flushes the WAL; pg_receivewal then streams the
# open transaction's messages too.
my @genuine;
foreach my $try (1 .. 300)
{
	$node->safe_psql('postgres', 'CREATE TEMP TABLE flush_wal ()');
	@genuine = streamed_messages($txid);
	last if @genuine == 2;
	usleep(100_000);
}
is(scalar @genuine, 2, 'the open transaction\'s header and row arrived through pg_receivewal')
  or diag("pg_receivewal: $err");
like($genuine[0][1], qr/^\{"head":/, 'the first is the header');
like($genuine[1][1], qr/"genuine"/,  'the second is the row');

# The forgeries, in the same open transaction.
my ($header, $row) = map { $_->[1] } @genuine;
my ($row_sig) = $row =~ /("$txid:[0-9]+:[0-9a-f]{16}")\]\z/;
(my $other_row = $row) =~ s/"genuine"/"forged"/;
my $full_event =
	'{"timestamp":"2026-12-02T10:00:00.000000Z","level":"AUDIT","name":"audit.model",'
  . '"message":"CREATE event by t (id: 2)","request_id":null,"service_name":"default",'
  . '"model":"t","event_type":"CREATE","instance_id":"2","instance_repr":{"id":2,"pad":"forged"},'
  . '"user_id":null,"user_info":null,"extra":{},"schema":"public","table":"t","db":"postgres",'
  . '"db_user":"cdc","session_user":"cdc","application_name":null,"client_addr":null,'
  . '"backend_pid":1,"txid":' . $txid . ',"sig":' . $row_sig . '}';
my @forged = ($header, $row, $other_row, $full_event);
my $rejected_before = writer_status($node)->{forged_rejected};
$s->query_safe("SELECT pg_logical_emit_message(true, 'activity_audit', "
	  . sql_literal($_) . ')')
  foreach @forged;
$s->query_safe('COMMIT');
$s->quit;

is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'flushed');
my @texts = grep { /"txid":$txid\}\z/ } stream_texts(stream_dir($node));
is(scalar @texts, 1, 'one event of the transaction delivered');
like($texts[0], qr/"pad":"genuine"/, 'the genuine one');
unlike(join("\n", stream_texts(stream_dir($node))), qr/forged/, 'no forged content anywhere in the stream');
is(writer_status($node)->{forged_rejected} - $rejected_before,
	scalar @forged, 'every forgery is counted in forged_rejected');
my $log = slurp_file($node->logfile, $log_offset);
my @warnings = ($log =~ /WARNING: .*activity_audit/g);
cmp_ok(scalar @warnings, '>=', scalar @forged, 'and logged as a WARNING')
  or diag($log);

stream_ok($node, 'stream valid (seq, chain)');

$recv->kill_kill;
$node->stop;
done_testing();

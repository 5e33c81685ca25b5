# 037_logical_decoding.pl: the README's logical-decoding recipes, run
# exactly as printed there, give the writer's events.
#
# wal2json (format version 2, from SQL) and pgoutput (with messages 'true',
# through a replication connection: pg_recvlogical) each read the messages
# of a workload in both WAL formats -- INSERT, UPDATE, DELETE, TRUNCATE, a
# rolled-back savepoint, a nested statement on another table -- plus a
# message with a lookalike prefix.  The events put together from what each
# recipe returns, as README's "The WAL messages" tells (AuditTest's
# events_of_messages), must be the writer's delivered events, line for
# line and in order; the lookalike must not be among the messages.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT events_of_messages stream_texts);
use StreamCheck;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "wal2json is not installed in $pkglibdir (Debian: apt-get install postgresql-15-wal2json)"
  unless -e "$pkglibdir/wal2json.so";

my $node = audit_node('ld', conf => "max_wal_senders = 4\n");
my $port = $node->port;
my $host = $node->host;

# Debian's PostgreSQL 15 lets only the libraries in output_plugin_libraries
# (default 'pgoutput, test_decoding') be used as output plugins; the
# README's set-up adds wal2json where the setting exists.
if ($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'}) eq '1')
{
	$node->safe_psql('postgres',
		q{ALTER SYSTEM SET output_plugin_libraries = 'pgoutput', 'test_decoding', 'wal2json'});
	$node->reload;
	$node->poll_query_until('postgres',
		q{SELECT current_setting('output_plugin_libraries') LIKE '%wal2json%'})
	  or die 'output_plugin_libraries was not reloaded';
}

# The recipes' set-up, as in README: a wal2json slot, a publication with no
# tables (messages only) and a pgoutput slot made with pg_recvlogical.
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	SELECT pg_create_logical_replication_slot('audit_w2j', 'wal2json');
	CREATE PUBLICATION audit_messages;
	});
$node->command_ok(
	[
		'pg_recvlogical', '-h', $host, '-p', $port, '-d', 'postgres',
		'--slot', 'audit_pgo', '--create-slot', '--plugin', 'pgoutput'
	],
	'pg_recvlogical creates the pgoutput slot');

sub set_format
{
	my ($f) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET audit.wal_format = '$f'; SELECT pg_reload_conf()");
	$node->poll_query_until('postgres', "SELECT current_setting('audit.wal_format') = '$f'")
	  or die "audit.wal_format did not become $f";
}

$node->safe_psql(
	'postgres', q{
	CREATE TABLE orders (id int PRIMARY KEY, total numeric, note text);
	CREATE TABLE order_log (id serial PRIMARY KEY, order_id int);
	SELECT activity_audit.track('orders', model_name => 'app.Order');
	SELECT activity_audit.track('order_log');
	CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO order_log (order_id) VALUES (NEW.id); RETURN NULL; END $$;
	CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION log_order();
	});

foreach my $format ('compact', 'full')
{
	set_format($format);
	my $b = $format eq 'compact' ? 0 : 100;
	$node->safe_psql(
		'postgres', qq{
		BEGIN;
		SET LOCAL audit.user_id = 'u-$format';
		INSERT INTO orders SELECT $b + i, i * 1.5, 'note "' || i || E'"\\tx' FROM generate_series(1, 3) i;
		SAVEPOINT s;
		UPDATE orders SET total = 0 WHERE id = $b + 1;
		ROLLBACK TO SAVEPOINT s;
		UPDATE orders SET total = total + 1, note = 'Zoë' WHERE id = $b + 2;
		COMMIT;
		DELETE FROM orders WHERE id = $b + 3;
		SELECT pg_logical_emit_message(true, 'activity_audit, sz: 1 content:', '{"lookalike":1}');
		SELECT pg_logical_emit_message(true, 'activity_audit ', '{"lookalike":2}');
		});
}
$node->safe_psql('postgres', 'TRUNCATE order_log');

is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'flushed');
my @expected = stream_texts(stream_dir($node));
# per format 3 orders and 3 order_log rows, 1 UPDATE, 1 DELETE; 1 TRUNCATE
is(scalar @expected, 17, 'the writer delivered the workload\'s events');
my $endpos = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');

# wal2json, format version 2, from SQL: the README's query.
my $w2j = $node->safe_psql(
	'postgres', q{
SELECT data::json->>'content' AS message
  FROM pg_logical_slot_get_changes('audit_w2j', NULL, NULL,
         'format-version', '2', 'include-transaction', 'false',
         'add-msg-prefixes', 'activity_audit')
 WHERE data::json->>'action' = 'M';
});
my @w2j_messages = split /\n/, $w2j;
unlike($w2j, qr/lookalike/, 'wal2json: no message with a lookalike prefix');
is_deeply([ events_of_messages(@w2j_messages) ], \@expected,
	'wal2json: the events put together from its messages are the delivered ones');

# pgoutput over a replication connection: the README's pg_recvlogical
# command, here with --endpos to stop.
my $out = $node->basedir . '/audit.pgoutput';
$node->command_ok(
	[
		'pg_recvlogical', '-h', $host, '-p', $port, '-d', 'postgres',
		'--slot', 'audit_pgo', '--start',
		'-o', 'proto_version=1', '-o', 'publication_names=audit_messages',
		'-o', 'messages=true', '--endpos', $endpos, '-f', $out
	],
	'pg_recvlogical streams pgoutput up to the end of the workload');

# The file holds pgoutput's protocol messages, each followed by a newline:
# here only Begin ('B'), Commit ('C') and Message ('M': flags, LSN, prefix
# with its NUL, content length, content).  Parse it strictly.
my $bytes = slurp_file($out);
my (@pgo_messages, @prefixes);
my $p = 0;
while ($p < length($bytes))
{
	my $type = substr($bytes, $p, 1);
	if ($type eq 'B') { $p += 1 + 8 + 8 + 4; }
	elsif ($type eq 'C') { $p += 1 + 1 + 8 + 8 + 8; }
	elsif ($type eq 'M')
	{
		my $nul = index($bytes, "\0", $p + 10);
		die 'pgoutput message without prefix end' if $nul < 0;
		my $prefix = substr($bytes, $p + 10, $nul - $p - 10);
		my $len = unpack('N', substr($bytes, $nul + 1, 4));
		my $content = substr($bytes, $nul + 5, $len);
		push @prefixes, $prefix;
		push @pgo_messages, $content if $prefix eq 'activity_audit';
		$p = $nul + 5 + $len;
	}
	else
	{
		die sprintf('unexpected pgoutput message type 0x%02x at byte %d', ord($type), $p);
	}
	is(substr($bytes, $p, 1), "\n", 'pg_recvlogical ends each message with a newline')
	  unless substr($bytes, $p, 1) eq "\n";
	$p++;
}
is(scalar(grep { $_ ne 'activity_audit' } @prefixes), 4,
	'pgoutput: the lookalike prefixes arrive too, and are told apart by exact comparison');
is_deeply([ events_of_messages(@pgo_messages) ], \@expected,
	'pgoutput: the events put together from its messages are the delivered ones');

stream_ok($node, 'stream valid (seq, chain)');
$node->stop;
done_testing();

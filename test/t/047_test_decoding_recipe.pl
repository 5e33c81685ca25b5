# 047_test_decoding_recipe.pl: the README's test_decoding recipes, taken
# from README.md and run exactly as printed, give the writer's events and
# no message whose prefix only begins with "activity_audit".
#
# test_decoding prints a message's prefix as it is, so a message with
# prefix 'activity_audit, sz: 1 content:' or 'activity_audit ' printed
# almost like ours, and the earlier recipe (LIKE 'message: transactional: 1
# prefix: activity\_audit, %') returned them as events while the writer
# ignored them without a word.  With audit.wal_format = full, a workload
# (INSERT, UPDATE, DELETE, a rolled-back savepoint) mixed with such
# lookalikes goes through the SQL recipe and then through the pg_recvlogical
# one (with --endpos added to stop it): each must return exactly the
# writer's delivered events, in order.  The writer counts every lookalike
# in forged_rejected and logs a WARNING naming its prefix.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT stream_texts writer_status wait_log);
use StreamCheck;

my $node = audit_node('td_recipe', conf => "audit.wal_format = 'full'\nmax_wal_senders = 4\n");

# The README's test_decoding section: the SQL block and the shell block.
my $readme = slurp_file("$FindBin::RealBin/../../README.md");
my ($sql_recipe) = $readme =~ /With `test_decoding` from SQL.*?\n```sql\n(.*?)```/s
  or die 'README: no test_decoding SQL recipe';
my ($create_sql, $query_sql) = split /^-- \.\.\. audited changes \.\.\.\n/m, $sql_recipe;
die 'README: the SQL recipe has no "-- ... audited changes ..." line' unless defined $query_sql;
my ($shell_recipe) = $readme =~ /Continuously, with `pg_recvlogical`.*?\n```\n(.*?)```/s
  or die 'README: no pg_recvlogical recipe';
my ($create_cmd, $stream_cmd) = $shell_recipe =~ /\A(.*?)\n(.*)\z/s;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, note text);
	SELECT activity_audit.track('t');
	});

# [prefix, content]; the first makes the old recipe's text valid JSON
my @lookalikes = (
	[ 'activity_audit, sz: 1 content:{"lookalike":0,"x":"', '"}' ],
	[ 'activity_audit, sz: 1 content:', '{"lookalike":1}' ],
	[ 'activity_audit ',                '{"lookalike":2}' ],
	[ 'activity_audit_x',               '{"lookalike":3}' ],
	[ "activity_audit\t",               '{"lookalike":4}' ]);

# a workload of n+1.., with every lookalike in and between its transactions
sub workload
{
	my ($n) = @_;
	my $emit = join('',
		map {
			my $p = $_->[0] =~ s/\t/\\t/gr;
			"SELECT pg_logical_emit_message(true, E'$p', '$_->[1]');\n"
		} @lookalikes);
	$node->safe_psql(
		'postgres', qq{
		BEGIN;
		INSERT INTO t SELECT $n + i, 'note ' || i FROM generate_series(1, 3) i;
		$emit
		SAVEPOINT s;
		UPDATE t SET note = 'undone' WHERE id = $n + 1;
		ROLLBACK TO SAVEPOINT s;
		UPDATE t SET note = 'Zoë' WHERE id = $n + 2;
		COMMIT;
		$emit
		DELETE FROM t WHERE id = $n + 3;
		});
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
		"workload $n delivered");
}

# JSON values, to compare what jsonb printed with what the writer wrote
my $json = JSON::PP->new->utf8->canonical;
sub decoded { return [ map { $json->decode($_) } @_ ]; }

###########################################################################
# The SQL recipe
###########################################################################
my $rejected0 = writer_status($node)->{forged_rejected};
my $offset = -s $node->logfile;
$node->safe_psql('postgres', $create_sql);
workload(0);
my @expected = stream_texts(stream_dir($node));
is(scalar @expected, 5, 'the writer delivered five events');
my ($ret, $out, $err) = $node->psql('postgres', $query_sql);
is($ret, 0, 'the SQL recipe runs') or diag($err);
unlike($out, qr/lookalike/, 'SQL recipe: no lookalike among the events');
is_deeply(decoded(split /\n/, $out), decoded(@expected),
	'SQL recipe: exactly the delivered events, in order');

is(writer_status($node)->{forged_rejected} - $rejected0, 2 * @lookalikes,
	'the writer counts every lookalike in forged_rejected');
ok( wait_log(
		$node,
		qr/WARNING: .*rejected a message .*\n.*DETAIL:  Its prefix "activity_audit, sz: 1 content:" only begins with "activity_audit"/,
		$offset, 5),
	'and logs a WARNING naming its prefix');
like(slurp_file($node->logfile, $offset), qr/DETAIL:  Its prefix "activity_audit\\x09" only begins/,
	'a control character in the prefix is written escaped');

###########################################################################
# The pg_recvlogical recipe
###########################################################################
$node->safe_psql('postgres', q{SELECT pg_drop_replication_slot('audit')});
$ENV{PGHOST} = $node->host;
$ENV{PGPORT} = $node->port;
s/-d mydb/-d postgres/ for ($create_cmd, $stream_cmd);
$node->command_ok([ 'bash', '-c', $create_cmd ], 'pg_recvlogical creates the slot as printed');
workload(100);
my @expected2 = (stream_texts(stream_dir($node)))[ 5 .. 9 ];
my $endpos = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
(my $cmd = $stream_cmd) =~ s/--start/--start --endpos $endpos/
  or die 'pg_recvlogical recipe has no --start';
my ($stdout, $stderr);
IPC::Run::run([ 'bash', '-o', 'pipefail', '-c', $cmd ], '>', \$stdout, '2>', \$stderr);
is($?, 0, 'the pg_recvlogical recipe runs') or diag($stderr);
unlike($stdout, qr/lookalike/, 'pg_recvlogical recipe: no lookalike among the events');
my @got = map { s/,"sig":"[^"]*"\}\z/}/r } split /\n/, $stdout;
is_deeply(\@got, \@expected2,
	'pg_recvlogical recipe: exactly the delivered events, as written, in order');

$node->stop;
done_testing();

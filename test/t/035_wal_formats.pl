# 035_wal_formats.pl: the writer delivers the same lines from either WAL
# format.
#
# One workload runs twice on one server, first with audit.wal_format = full,
# then compact: every event type, composite keys and escapes, a row larger
# than a WAL page, context settings and roles and application_name changing
# inside a transaction, more tables in one transaction than the writer keeps
# headers for (so headers are written again), savepoints rolled back and
# released, a nested firing, a prepared transaction, TRUNCATE.  Then:
#  - each run's lines are, byte for byte, the events its WAL messages make
#    when put together as README tells a logical-decoding consumer
#    (AuditTest.pm's events_of_messages), timestamps and all;
#  - the two runs' lines are identical but for what differs from run to run
#    (timestamp, backend_pid, txid and the writer's keys);
#  - the stream's chain verifies across both runs (every hash recomputed).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wal_messages events_of_messages stream_texts);
use StreamCheck;

my $node = audit_node('wal_formats', conf => "max_prepared_transactions = 2\n");
$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE ROLE app_user;
	CREATE TABLE a (id int PRIMARY KEY, t text, j jsonb, f float8);
	CREATE TABLE b (k1 int, k2 text, v text, PRIMARY KEY (k1, k2));
	CREATE TABLE c (v text);
	SELECT activity_audit.track('a', model_name => 'app.A"q\');
	SELECT activity_audit.track('b');
	SELECT activity_audit.track('c');
	GRANT ALL ON a, b, c TO app_user;
	CREATE FUNCTION nest() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO c VALUES ('nested ' || NEW.id); RETURN NEW; END $$;
	CREATE TRIGGER nest AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION nest();
	});
# twenty more tracked tables, to outrun the writer's 16 headers
$node->safe_psql('postgres',
	join('', map { "CREATE TABLE w$_ (id int PRIMARY KEY); SELECT activity_audit.track('w$_');" } 1 .. 20));

sub workload
{
	my ($base) = @_;
	my $wide = 'x' x 20000;
	my $tables = join('', map { "INSERT INTO w$_ VALUES ($base + 1);\n" } 1 .. 20);
	$node->safe_psql('postgres', <<"SQL");
BEGIN;
SET LOCAL audit.user_id = 'u1';
SET LOCAL audit.extra = '{"a":{},"sig":"1:2:3"}';
INSERT INTO a VALUES ($base + 1, E'quote " backslash \\\\ tab \\t \\u00e9', '{"x":[1,{"y":"}"}]}', 1.5),
                     ($base + 2, NULL, NULL, NULL);
UPDATE a SET t = 'new', f = -0.0 WHERE id = $base + 1;
SAVEPOINT s1;
INSERT INTO b VALUES ($base + 1, 'x"y', 'v'), ($base + 2, '', NULL);
SAVEPOINT s2;
INSERT INTO b VALUES ($base + 3, 'rolled back', 'v');
ROLLBACK TO SAVEPOINT s2;
RELEASE SAVEPOINT s1;
SET LOCAL audit.user_id = 'u2';
SET LOCAL audit.user_info = '{"name":"Ann"}';
SET LOCAL application_name = 'other app';
UPDATE b SET v = 'w' WHERE k1 = $base + 1;
SET LOCAL ROLE app_user;
DELETE FROM a WHERE id = $base + 2;
INSERT INTO c VALUES ('$wide');
RESET ROLE;
$tables
INSERT INTO a VALUES ($base + 3, 'after the tables', NULL, 2);
COMMIT;
BEGIN;
INSERT INTO b VALUES ($base + 9, 'prepared', NULL);
PREPARE TRANSACTION 'p$base';
COMMIT PREPARED 'p$base';
TRUNCATE c;
SQL
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
		"workload $base delivered");
}

sub mask
{
	my ($l) = @_;
	$l =~ s/^\{"timestamp":"[^"]+"/{"timestamp":T/;
	$l =~ s/,"backend_pid":[0-9]+,"txid":[0-9]+\}\z/,"backend_pid":P,"txid":X}/;
	return $l;
}

# the messages written since the last call (peeked, then consumed)
sub messages_now
{
	my @m = wal_messages($node);
	$node->safe_psql('postgres', q{SELECT count(*) FROM pg_logical_slot_get_changes('td', NULL, NULL)});
	return @m;
}

my %run;
foreach my $format ('full', 'compact')
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET audit.wal_format = '$format'");
	$node->reload;
	$node->poll_query_until('postgres', "SELECT current_setting('audit.wal_format') = '$format'")
	  or die "audit.wal_format did not become $format";
	my $before = scalar(stream_texts(stream_dir($node)));
	workload($format eq 'full' ? 0 : 1000);
	my @msgs = messages_now();
	my @lines = stream_texts(stream_dir($node));
	@lines = @lines[ $before .. $#lines ];
	my @expect = events_of_messages(@msgs);
	is(scalar @lines, scalar @expect, "$format: as many lines as events in the WAL");
	is_deeply(\@lines, \@expect,
		"$format: the lines are the WAL's events, put together as README says, byte for byte");
	$run{$format} = [ map { mask($_) } @lines ];
	if ($format eq 'full')
	{
		is(scalar(grep { /^\[/ || /^\{"head"/ } @msgs), 0, 'full: no compact messages');
	}
	else
	{
		my $headers = grep { /^\{"head"/ } @msgs;
		my $rows = grep { /^\[/ } @msgs;
		cmp_ok($headers, '>=', 26, 'compact: headers for each table, context and the window');
		cmp_ok($headers, '<', $rows, 'compact: fewer headers than rows');
	}
}

# the ids differ by 1000 between the runs; put them on one base
my @full = @{ $run{full} };
my @compact = map {
	my $l = $_;
	$l =~ s/(?<![0-9])10([0-9]{2})(?![0-9])/sprintf('%d', $1)/ge;
	$l
} @{ $run{compact} };
is(scalar @compact, scalar @full, 'both runs delivered as many events');
my $same = 0;
for my $i (0 .. $#full)
{
	if (($compact[$i] // '') eq $full[$i]) { $same++; next; }
	diag("line $i differs:\n full:    $full[$i]\n compact: " . ($compact[$i] // '(none)'));
	last;
}
is($same, scalar @full, 'the two formats gave the same lines, line for line');
stream_ok(stream_dir($node), 'the stream verifies across both formats (every hash recomputed)');

done_testing();

# 022_log_stream_window.pl: log_stream(since) skips the files that cannot
# hold events of the window, without changing its result.
#
# Three batches of events, two seconds apart, land in different files.  With
# 'since' taken just before the third batch, log_stream(since) must return
# exactly the rows the unbounded log_stream() returns at or after 'since',
# and it must not even open the first batch's files: they are made
# unreadable, and only the unbounded call fails on them.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest;

my $node = audit_node('window');
$node->safe_psql(
	'postgres', q{
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	CREATE EXTENSION activity_audit;
	CREATE TABLE w (id int PRIMARY KEY, batch int);
	SELECT activity_audit.track('w');
	});

# one batch: a few transactions, all delivered before we go on
sub batch
{
	my ($n) = @_;
	for my $i (1 .. 3)
	{
		$node->safe_psql('postgres',
			"INSERT INTO w SELECT $n * 100 + $i * 10 + g, $n FROM generate_series(1, 3) g");
	}
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
		't', "batch $n delivered");
}

batch(1);
my @first_files = glob($node->data_dir . '/log/*.jsonl');
ok(scalar(@first_files) >= 1, 'the first batch made at least one file');
sleep 2.2;
batch(2);
sleep 2.2;
my $since = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
batch(3);

my $files = () = glob($node->data_dir . '/log/*.jsonl');
ok($files >= 3, "the batches are in several files ($files)");

my $bounded = $node->safe_psql('postgres',
	qq{SELECT string_agg(seq || ':' || instance_id, ',' ORDER BY seq)
	     FROM activity_audit.log_stream(since => '$since')});
my $filtered = $node->safe_psql('postgres',
	qq{SELECT string_agg(seq || ':' || instance_id, ',' ORDER BY seq)
	     FROM activity_audit.log_stream() WHERE ts >= '$since'});
is($bounded, $filtered, 'log_stream(since) returns what filtering the whole stream returns');
is( $node->safe_psql(
		'postgres',
		qq{SELECT count(*) FROM activity_audit.log_stream(since => '$since')}),
	'9',
	'the window holds the third batch');

# the first batch's files are never opened by the bounded call
chmod 0000, @first_files;
is( $node->safe_psql(
		'postgres',
		qq{SELECT count(*) FROM activity_audit.log_stream(since => '$since')}),
	'9',
	'log_stream(since) does not open the files before the window');
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SELECT count(*) FROM activity_audit.log_stream()');
isnt($ret, 0, 'the unbounded call does read them (and fails on them)');
like($stderr, qr/could not open audit log file/, 'it names the unreadable file');
chmod 0600, @first_files;

$node->stop;
done_testing();

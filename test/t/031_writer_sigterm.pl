# 031_writer_sigterm.pl: an operator's SIGTERM to the writer does not stop
# delivery for good.
#
# A background worker that exits with status 0 is unregistered by the
# postmaster and never started again; the writer used to exit so on
# SIGTERM, and delivery then stopped until the server restarted while the
# writer's slot held WAL.  It exits with status 1 now (as worker_spi does):
# the postmaster restarts it, and it resumes exactly where it stopped.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status);
use StreamCheck;

my $node = audit_node('sigterm');
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT generate_series(1, 10);
	SELECT activity_audit.flush('30s');
	});

my $pid = writer_status($node)->{pid};
ok($pid, "writer running as $pid");
kill 'TERM', $pid or die "kill: $!";
$node->poll_query_until('postgres',
	qq{SELECT pid IS NOT NULL AND pid <> $pid FROM activity_audit.writer_status()})
  or diag('writer was not restarted');
my $new = writer_status($node)->{pid};
ok(defined $new && $new != $pid, 'the postmaster started a new writer');

$node->safe_psql('postgres', q{INSERT INTO t SELECT generate_series(11, 20)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'events committed after the SIGTERM are delivered');
my @events = read_stream(stream_dir($node));
is(scalar @events, 20, 'every event exactly once');
is($events[-1]{seq}, 20, 'seq runs on');

done_testing();

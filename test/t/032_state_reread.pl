# 032_state_reread.pl: the writer reads its state file back correctly after
# a restart, also when freed memory is overwritten.
#
# The state file parser used to test the last line's end after freeing the
# buffer that held it (a use after free, harmless only while freed memory
# keeps its bytes).  The server runs with glibc's MALLOC_PERTURB_, which
# fills freed memory: with the old code the writer then called a sound
# state file "corrupt" at startup and delivered nothing.  The writer reads
# the state file at every start, to find the current stream file.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status);
use StreamCheck;

my $node = audit_node('state_reread');
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT generate_series(1, 5);
	SELECT activity_audit.flush('30s');
	});
is(scalar(read_stream(stream_dir($node))), 5, 'five events delivered');

# Restart with freed memory filled with 0xa5 in every server process.
$node->stop;
{
	local $ENV{MALLOC_PERTURB_} = '165';
	$node->start;
}
$node->safe_psql('postgres', q{INSERT INTO t SELECT generate_series(6, 10)});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'events after the restart are delivered');
is(writer_status($node)->{last_error}, undef, 'no error reported');
ok(!$node->log_contains(qr/stream_state" is corrupt/),
	'the state file was not called corrupt');
my @events = read_stream(stream_dir($node));
is(scalar @events, 10, 'every event exactly once');

done_testing();

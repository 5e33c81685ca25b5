# 046_last_error_clears.pl: writer_status().last_error clears once the
# writer delivers again, whichever writer process reported it.
#
# The error lives in shared memory, so it outlives the writer process that
# reported it.  The file sink fails (the stream directory made unwritable
# while the next commit needs a new file), last_error says so; then the
# writer gets a SIGTERM (as from an operator's kill, or a checkpoint
# invalidating its slot) and exits, and the directory is made
# writable again before the postmaster starts the next writer, which
# therefore never meets the error.  It delivers the waiting event, and
# last_error must be null: it used to keep the old "Permission denied"
# for good, although everything was delivered.  A lost stretch of WAL
# (gap line) is the exception, kept until another error replaces it
# (025_wal_lost.pl, 028_slot_reserve.pl).  While the sink fails, the WAL
# the slot keeps passes audit.retained_warning, which the writer logs as it
# retries.
#
# The test must run as the server's (non-root) OS user: root ignores file
# permissions.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

plan skip_all => 'root ignores file permissions' if $> == 0;

my $node = audit_node('last_error',
	conf => "audit.rotation_size = '1kB'\naudit.retained_warning = '1MB'\n");
my $dir = stream_dir($node);

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, 3) g;
	});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'first events delivered (the file is past the rotation size)');

# the next commit needs a new file, which cannot be made
chmod(0500, $dir) or die "chmod $dir: $!";
usleep(1_100_000);    # file names have second resolution
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (10, 'waits')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('2s')}), 'f',
	'flush() times out while the directory is unwritable');
like(writer_status($node)->{last_error} // '', qr/Permission denied/,
	'last_error names the problem');
ok(wait_log($node, qr/WARNING: .*Permission denied/, $offset, 10), 'and the log');

# meanwhile the slot keeps all new WAL: past audit.retained_warning the
# writer says so while it retries, not only once it delivers again
$node->safe_psql('postgres', q{SELECT pg_switch_wal(); CREATE TABLE filler AS SELECT 1 AS x; SELECT pg_switch_wal()});
ok( wait_log(
		$node,
		qr/WARNING: .*keeps .* of WAL, more than audit\.retained_warning \(1024 kB\)\n.*DETAIL: .*has not delivered it yet/,
		$offset, 20),
	'a WARNING past audit.retained_warning while the sink fails');

# a new writer that never meets the error
my $pid = writer_status($node)->{pid};
kill('TERM', $pid) or die "kill $pid: $!";
chmod(0700, $dir) or die "chmod $dir: $!";
ok( $node->poll_query_until(
		'postgres',
		"SELECT pid IS NOT NULL AND pid <> $pid FROM activity_audit.writer_status()"),
	'the postmaster starts a new writer');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't',
	'the new writer delivers the waiting event');
# flush() returned once the position was published, which clears it
my $err = writer_status($node)->{last_error};
is($err, undef, 'last_error is null once it has delivered')
  or diag("last_error: $err");
unlike(slurp_file($node->logfile, $offset), qr/activity_audit writer delivers again/,
	'(the new writer never met the error: nobody said "delivers again")');

my $events = stream_ok($node, 'the stream is valid');
is(scalar @$events, 4, 'four events, once each');

$node->stop;
done_testing();

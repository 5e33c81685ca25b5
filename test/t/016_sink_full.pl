# 016_sink_full.pl: the file sink fills up in the middle of a write.
#
# The server runs with a soft file-size limit (RLIMIT_FSIZE) of 24 MB: as
# with a full disk, a write to the stream file then stops part-way through a
# line and the next write fails (EFBIG instead of ENOSPC; PostgreSQL ignores
# SIGXFSZ).  WAL segments (16 MB) and the table (its text compresses) stay
# below it.  16 transactions of 1,000 rows with 2 kB of text each make about
# 36 MB of events, so the stream file reaches the limit part-way through.
#
# While it is full: flush() times out, writer_status().last_error and a
# server-log WARNING name the problem, the file ends with a whole line (the
# partly written one was cut off) and what it holds is a valid chain of the
# first events, in order.  Then the limit of the writer process is lifted
# (prlimit), as when space is freed: delivery resumes by itself and the
# stream holds exactly the 16,000 committed events, once each, in commit
# order, chain intact (checked with activity_audit_verify).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

my $limit = 24 * 1024 * 1024;
my $node = audit_node('sink_full');
my $dir = stream_dir($node);

# instance_id of every line of the stream, in order (a regex: decoding
# 36 MB of JSON in Perl would take long; the chain is checked by the tool)
sub stream_ids
{
	my @ids;
	foreach my $f (stream_files($dir))
	{
		open(my $fh, '<', $f) or die "$f: $!";
		while (my $line = <$fh>)
		{
			$line =~ /"instance_id":"(\d+)"/ or die "no instance_id in $f: $line";
			push @ids, $1;
		}
		close($fh);
	}
	return @ids;
}

# activity_audit_verify on the stream: exit status and output
sub verify_tool
{
	my $out = `activity_audit_verify '$dir' 2>&1`;
	return ($? >> 8, $out);
}

# set the soft RLIMIT_FSIZE of a process (the hard limit stays)
sub set_fsize
{
	my ($pid, $value) = @_;
	system('prlimit', "--pid=$pid", "--fsize=$value:") == 0
	  or BAIL_OUT("prlimit --pid=$pid --fsize=$value: failed");
}

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	ALTER SYSTEM SET audit.rotation_size = 0;
});

# restart with the limit: the server inherits it from this process
$node->stop;
set_fsize($$, $limit);
$node->start;
set_fsize($$, 'unlimited');
my $wpid = writer_status($node)->{pid};
ok($wpid, 'the writer runs');
like(slurp_file("/proc/$wpid/limits"), qr/Max file size\s+$limit\s/,
	'the writer has the 24 MB file-size limit');

my $log_offset = -s $node->logfile;
foreach my $k (0 .. 15)
{
	my ($lo, $hi) = ($k * 1000 + 1, $k * 1000 + 1000);
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, repeat(md5(g::text), 64) FROM generate_series($lo, $hi) g"
	);
}

###########################################################################
# Full
###########################################################################
ok(wait_log($node, qr/WARNING: .*File too large/, $log_offset, 60),
	'the server log has a WARNING naming the problem');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('2s')}),
	'f', 'flush() times out while the file cannot grow');
like(writer_status($node)->{last_error} // '', qr/could not write to audit stream file .*File too large/,
	'writer_status().last_error names the problem');

my @files = stream_files($dir);
is(scalar @files, 1, 'one stream file');
my $size = -s $files[0];
cmp_ok($size, '<=', $limit, 'the file is within the limit');
# a failed write is undone back to the end of the previous one: the file
# ends within one write buffer (256 kB) and a line of the limit
cmp_ok($size, '>', $limit - 300 * 1024, 'the file was filled up to the limit');
my $text = slurp_file($files[0]);
is(substr($text, -1), "\n", 'the file ends with a whole line (the partial one was cut)');
my ($rc, $out) = verify_tool();
is($rc, 0, 'what the full file holds is a valid chain') or diag($out);
my @ids = stream_ids();
cmp_ok(scalar @ids, '>', 5000, 'the first events were delivered');
cmp_ok(scalar @ids, '<', 16000, 'but not all of them');
is_deeply(\@ids, [ 1 .. scalar @ids ], 'in commit order, from the first');

###########################################################################
# Space again: delivery resumes by itself
###########################################################################
set_fsize($wpid, 'unlimited');
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')}),
	't', 'flush() returns true once the file can grow');
is(writer_status($node)->{last_error}, undef, 'last_error is cleared');
is(writer_status($node)->{pid}, $wpid, 'the same writer process resumed (no restart)');

($rc, $out) = verify_tool();
is($rc, 0, 'activity_audit_verify: chain intact') or diag($out);
like($out, qr/events verified: 16000 \(seq 1\.\.16000\)/, 'activity_audit_verify: 16,000 events, seq 1..16000');
@ids = stream_ids();
is_deeply(\@ids, [ 1 .. 16000 ], 'every committed row once, in commit order');

$node->stop;
done_testing();

# 015_page_cache.pl: the writer does not fill the page cache with the
# stream.  Once durable, a file's pages are dropped but its last 16 MB (a
# shipper tailing the file still reads those from memory), and a file left
# by rotation is dropped whole.  Resident bytes are read with fincore(1).
#
#  (1) One transaction of about 50 MB of events: after flush() the current
#      file holds all of it, yet at most 24 MB of it is in the page cache.
#  (2) After a rotation, the file left behind has at most 1 MB in the page
#      cache.
#  (3) The stream is still exactly what was committed: one line per row,
#      chain valid (StreamCheck).

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use AuditTest;
use StreamCheck;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $db = 'postgres';

# bytes of $file in the page cache
sub resident
{
	my ($file) = @_;
	my $out = `fincore --bytes --noheadings --output RES '$file'`;
	die "fincore failed on $file" if $? != 0;
	$out =~ s/\s+//g;
	return $out;
}

# fsync on, as in production: the test harness turns it off, and unsynced
# (dirty) pages cannot be dropped
my $node = audit_node('page_cache');
$node->append_conf('postgresql.conf', 'fsync = on');
$node->restart;
$node->safe_psql(
	$db, q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	ALTER SYSTEM SET audit.rotation_size = 0;
	SELECT pg_reload_conf();
});

# (1) ~1.3 kB per event, 40,000 events in one commit
$node->safe_psql($db,
	q{INSERT INTO t SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 40000) g});
is($node->safe_psql($db, q{SELECT activity_audit.flush('120s')}),
	't', '(1) the big transaction is delivered');
my $file = $node->data_dir . '/'
  . $node->safe_psql($db, q{SELECT current_file FROM activity_audit.writer_status()});
my $size = -s $file;
my $res = resident($file);
note("(1) file $size bytes, resident $res bytes");
cmp_ok($size, '>', 48 * 1024 * 1024, '(1) the file holds about 50 MB');
cmp_ok($res, '<=', 24 * 1024 * 1024,
	'(1) at most 24 MB of the file stays in the page cache');

# (2) a rotation leaves the first file behind: dropped whole
$node->safe_psql(
	$db, q{
	ALTER SYSTEM SET audit.rotation_size = '1MB';
	SELECT pg_reload_conf();
});
usleep(1_100_000);    # file names have one-second resolution
$node->safe_psql($db, q{INSERT INTO t VALUES (40001, 'after rotation')});
is($node->safe_psql($db, q{SELECT activity_audit.flush('60s')}),
	't', '(2) the next event is delivered');
my $now = $node->data_dir . '/'
  . $node->safe_psql($db, q{SELECT current_file FROM activity_audit.writer_status()});
isnt($now, $file, '(2) the stream rotated to a new file');
$res = resident($file);
note("(2) old file resident $res bytes");
cmp_ok($res, '<=', 1024 * 1024,
	'(2) at most 1 MB of the file left behind stays in the page cache');

# (3) exactly the committed rows, chain intact (the offline verifier:
# decoding 50 MB of JSON in Perl would take a minute)
my $dir = stream_dir($node);
my $out = `activity_audit_verify '$dir'`;
is($? >> 8, 0, '(3) the chain is valid') or diag($out);
like($out, qr/events verified: 40001 \(seq 1\.\.40001\)/,
	'(3) one event per committed row');

$node->stop;
done_testing();

# Copyright: activity_audit contributors
#
# 041_digests.pl: digests of the stream's head expose what the hash chain
# alone cannot see -- lines cut from its end -- and a rewritten history.
#
#  (a) With audit.digest_interval = 1s the writer logs "AUDIT DIGEST: {...}"
#      once events were delivered, naming the last seq; digest() returns the
#      same head (the last line's seq, hash, lsn, committed_at) and the same
#      signature.  When the writer stops it logs a digest of what it
#      delivered since the last one, even before the interval.
#  (b) On the intact stream verify(digests) is ok, with digest() rows and
#      with the log lines as strings, and so is activity_audit_verify
#      --digests SERVER_LOG.
#  (c) The last line cut: verify() and the tool without digests still say
#      intact; with the digests both fail, naming the cut.  A line rewritten
#      with its hash recomputed (a chain made again): verify() intact,
#      verify(digests) and the tool fail, naming the rewrite.
#  (d) A digest whose sig was changed is refused by verify(digests); the
#      tool, which has no key, checks only what the digest says.
#  (e) The oldest files removed (archived): verify() and the tool alone say
#      the start is missing; with the digests (one names the seq before the
#      first remaining line, with its prev_hash) the rest is verified.

use strict;
use warnings;

use File::Copy qw(copy);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wait_log file_lines write_lines);
use StreamCheck;

my $tool = 'activity_audit_verify';
my $node = audit_node('digests', conf => "audit.digest_interval = '1s'\n");
my $dir = stream_dir($node);
$node->safe_psql('postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, v text);
	SELECT activity_audit.track('t');
});
my $offset = -s $node->logfile;
for my $i (1 .. 5)
{
	$node->safe_psql('postgres', "INSERT INTO t VALUES ($i, 'row $i')");
}
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'delivered');
my @events = read_stream($dir);
my $last = $events[-1];
is($last->{seq}, 5, 'five events');

###########################################################################
# (a) the digests
###########################################################################
ok(wait_log($node, qr/LOG:  AUDIT DIGEST: \{"seq":5,/, $offset, 20), 'the writer logs a digest naming the last seq');
my ($logged) = slurp_file($node->logfile, $offset) =~ /AUDIT DIGEST: (\{"seq":5,[^\n]*\})/;
like($logged, qr/^\{"seq":5,"hash":"$last->{hash}","lsn":"$last->{lsn}","committed_at":"$last->{committed_at}","sig":"[0-9a-f]{16}"\}$/,
	'the digest names the last line exactly');
my ($sig) = $logged =~ /"sig":"([0-9a-f]{16})"/;
is($node->safe_psql('postgres', q{
	SELECT seq || ' ' || hash || ' ' || lsn || ' ' || to_char(committed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ' ' || sig
	  FROM activity_audit.digest()}),
	"5 $last->{hash} $last->{lsn} $last->{committed_at} $sig", 'digest() is the same head, with the same signature');

# a digest at stop, before the interval is over
$node->append_conf('postgresql.conf', "audit.digest_interval = '1h'\n");
$node->reload;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (6, 'row 6')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'sixth delivered');
$offset = -s $node->logfile;
$node->stop;
like(slurp_file($node->logfile, $offset), qr/AUDIT DIGEST: \{"seq":6,/, 'the writer logs the head when it stops');
$node->append_conf('postgresql.conf', "audit.digest_interval = '1s'\n");
$node->start;

###########################################################################
# (b) the intact stream
###########################################################################
my $digests_sql = q{(SELECT jsonb_agg(d) FROM activity_audit.digest() d)};
is($node->safe_psql('postgres', "SELECT ok FROM activity_audit.verify($digests_sql)"), 't',
	'verify(digests) with digest() rows: ok');
my @log_lines = grep { /AUDIT DIGEST: / } split /\n/, slurp_file($node->logfile);
cmp_ok(scalar(@log_lines), '>=', 2, 'digests in the server log');
# a JSON array of strings as an SQL literal
sub sql_json
{
	my $j = JSON::PP->new->canonical->encode([@_]);
	$j =~ s/'/''/g;
	return "'$j'";
}
my $as_strings = sql_json(@log_lines);
like($node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM activity_audit.verify($as_strings)"),
	qr/^true seq 1 to 6 intact in \d+ file\(s\); \d+ digest\(s\) found in the stream$/,
	'verify(digests) with the log lines: ok');
command_checks_all([ $tool, '--digests', $node->logfile, $dir ], 0,
	[ qr/^digests: \d+ found in the stream$/m, qr/^RESULT: OK/m ], [qr/^$/],
	'the tool with --digests SERVER_LOG: ok');

###########################################################################
# (c) a cut tail, a rewritten line
###########################################################################
# the writer must not touch the files meanwhile: the log sink only
$node->append_conf('postgresql.conf', "audit.sink = 'log'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_file IS NULL FROM activity_audit.writer_status()})
  or die 'the writer still has the file open';
my @files = stream_files($dir);
my $file = $files[-1];
my @lines = file_lines($file);
my $saved = $lines[-1];
write_lines($file, @lines[ 0 .. $#lines - 1 ]);

is($node->safe_psql('postgres', q{SELECT ok FROM activity_audit.verify()}), 't',
	'the last line cut: verify() alone says intact');
my ($seq6) = slurp_file($node->logfile) =~ /(AUDIT DIGEST: \{"seq":6,[^\n]*\})/;
my $stored = sql_json($seq6);
like($node->safe_psql('postgres', "SELECT ok || ' ' || first_bad_seq || ' ' || detail FROM activity_audit.verify($stored)"),
	qr/^false 6 the stream ends at seq 5, but the digest of \S+ names seq 6: events were cut from its end$/,
	'verify(digests) names the cut');
command_checks_all([ $tool, $dir ], 0, [qr/^RESULT: OK/m], [qr/^$/], 'the tool alone: intact');
command_checks_all([ $tool, '--digests', $node->logfile, $dir ], 1,
	[ qr/^problem: the stream ends at seq 5, but the digest of \S+ names seq 6: events were cut from its end$/m,
	  qr/^RESULT: BROKEN/m ], [qr/^$/], 'the tool with the digests: the cut');

# a rewritten line, its hash and the chain recomputed
my $prev = $lines[-3] =~ /"hash":"([0-9a-f]{64})"\}\n?$/ ? $1 : die;
my $victim = $lines[-2];
$victim =~ s/row 5/row X/ or die 'no row 5 in the line';
$victim =~ s/,"prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\n?$//;
my $rehash = chain_hash($prev, "$victim,\"prev_hash\":\"$prev\",\"hash\":\"\"}");
$victim .= ",\"prev_hash\":\"$prev\",\"hash\":\"$rehash\"}\n";
write_lines($file, @lines[ 0 .. $#lines - 2 ], $victim);
is($node->safe_psql('postgres', q{SELECT ok FROM activity_audit.verify()}), 't',
	'a rewritten last line with its hash recomputed: verify() alone says intact');
like($node->safe_psql('postgres', "SELECT ok || ' ' || first_bad_seq || ' ' || detail FROM activity_audit.verify($as_strings)"),
	qr/^false 5 seq 5 has hash \w+\.\.\., but the digest of \S+ says \w+\.\.\.: the stream was rewritten$/,
	'verify(digests) names the rewrite');
command_checks_all([ $tool, '--digests', $node->logfile, $dir ], 1,
	[ qr/^problem: seq 5 has hash/m, qr/^RESULT: BROKEN/m ], [qr/^$/], 'so does the tool');

###########################################################################
# (d) a digest with another sig
###########################################################################
my @forged = @log_lines;
$forged[0] =~ s/"sig":"([0-9a-f])/'"sig":"' . ($1 eq '0' ? '1' : '0')/e;
my $forged = sql_json(@forged);
my ($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM activity_audit.verify($forged)");
like($err, qr/ERROR:  digest 1 \(seq \d+\) is not signed by this server's event key/, 'a digest with a changed sig is refused');

# put the stream back and let the writer go on
write_lines($file, @lines);
$node->append_conf('postgresql.conf', "audit.sink = 'file'\n");
$node->reload;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (7, 'row 7')});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'delivery goes on');
is($node->safe_psql('postgres', "SELECT ok FROM activity_audit.verify($digests_sql)"), 't', 'and verifies with its digest');
stream_ok($dir, 'one valid chain');

###########################################################################
# (e) the oldest files removed (archived): accepted from the digest of the
#     line before the first remaining one
###########################################################################
$node->append_conf('postgresql.conf', "audit.rotation_size = '1kB'\n");
$node->reload;
my @heads = ($node->safe_psql('postgres', q{SELECT row_to_json(d)::text FROM activity_audit.digest() d}));
for my $i (8 .. 10)
{
	sleep 1.1;    # file names are unique to the second
	$node->safe_psql('postgres', "INSERT INTO t VALUES ($i, 'row $i')");
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', "row $i delivered");
	push @heads, $node->safe_psql('postgres', q{SELECT row_to_json(d)::text FROM activity_audit.digest() d});
}
@files = stream_files($dir);
cmp_ok(scalar(@files), '>=', 3, 'the stream spans several files');
my $archive = PostgreSQL::Test::Utils::tempdir();
my $copy = PostgreSQL::Test::Utils::tempdir();
copy($_, $copy) for @files;
my @kept = stream_files($copy);
my ($first_kept) = file_lines($kept[-2]);
my ($first_kept_seq) = $first_kept =~ /,"seq":(\d+),/;
unlink $_ for @kept[ 0 .. $#kept - 2 ];     # keep the last two files
command_checks_all([ $tool, $copy ], 1, [qr/does not start at seq 1/m], [qr/^$/],
	'the oldest files removed: the tool alone says the start is missing');
# the digests in the server log: one names the seq before the first kept line
command_checks_all([ $tool, '--digests', $node->logfile, $copy ], 0,
	[ qr/^events verified: \d+ \(seq $first_kept_seq\.\./m,
	  qr/which starts after the digest of seq @{[ $first_kept_seq - 1 ]}/m, qr/^RESULT: OK/m ],
	[qr/^$/], 'with the digests: intact from the anchor on');

# and from SQL, with digest() rows kept by a job
$node->append_conf('postgresql.conf', "audit.sink = 'log'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_file IS NULL FROM activity_audit.writer_status()})
  or die 'the writer still has the file open';
@files = stream_files($dir);
my ($live_first) = file_lines($files[-2]);
my ($live_first_seq) = $live_first =~ /,"seq":(\d+),/;
for my $f (@files[ 0 .. $#files - 2 ])
{
	rename($f, "$archive/" . (split m{/}, $f)[-1]) or die "cannot move $f: $!";
}
my $kept_json = '[' . join(',', @heads) . ']';
like($node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM activity_audit.verify('$kept_json'::jsonb)"),
	qr/^true seq $live_first_seq to \d+ intact in 2 file\(s\); \d+ digest\(s\) found in the stream, which starts after the digest of seq @{[ $live_first_seq - 1 ]}$/,
	'verify(digests) accepts the stream from the anchor');
like($node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM activity_audit.verify()"),
	qr/^false .*does not start at seq 1/, 'verify() alone does not');
for my $f (glob "$archive/*.jsonl")
{
	rename($f, "$dir/" . (split m{/}, $f)[-1]) or die "cannot move $f back: $!";
}
$node->append_conf('postgresql.conf', "audit.sink = 'file'\n");
$node->reload;
stream_ok($dir, 'the stream whole again');

$node->stop;
done_testing();

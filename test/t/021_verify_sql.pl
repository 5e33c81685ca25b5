# 021_verify_sql.pl: activity_audit.verify() against tampered files.
#
# A stream of several files (audit.rotation_size = '1kB', a pause between
# transactions so the new file gets a new name) is checked intact; then,
# one case at a time on the stopped node, a line of a middle file is edited,
# edited and re-hashed, deleted, duplicated, two lines are swapped, a middle
# file is removed or ends in half a line, and verify() must answer
# ok = false with the exact first_bad_seq (the seq the first failing line
# should have had: everything before it is proven) and a detail naming the
# problem.  The pristine files are put back between cases.  The last file
# is never touched while the node is stopped (the writer reads its tail at
# startup); a half-written last line, which the writer may be in the middle
# of appending, is checked on the running node: neither verify() nor
# log_stream() counts it.
#
# StreamCheck's Perl verifier is run on every tampered set too, so the two
# implementations agree.

use strict;
use warnings;

use File::Copy;
use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT file_lines write_lines);
use StreamCheck;

my $node = audit_node('verify_sql');
my $dir = stream_dir($node);

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
});
usleep(300_000);

# Two rows per transaction, each event some 600 bytes: every file passes
# 1kB after one transaction, and the pause gives the next file a new name.
my $nxacts = 5;
for my $x (1 .. $nxacts)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, repeat('x', 300) FROM generate_series("
		  . (2 * $x - 1) . ", " . (2 * $x) . ") g");
	is($node->safe_psql('postgres', "SELECT activity_audit.flush('30s')"),
		't', "transaction $x delivered");
	usleep(1_100_000) if $x < $nxacts;
}

my @files = stream_files($dir);
cmp_ok(scalar @files, '>=', 4, 'the stream spans at least 4 files');
my $events = stream_ok($dir, 'pristine stream valid (StreamCheck)');
my $n = scalar @$events;
is($n, 2 * $nxacts, 'one event per committed row');

is( $node->safe_psql('postgres',
		q{SELECT ok, events, first_bad_seq IS NULL, detail FROM activity_audit.verify()}),
	"t|$n|t|seq 1 to $n intact in " . scalar(@files) . " file(s)",
	'verify(): the intact stream');
is($node->safe_psql('postgres', 'SELECT count(*) FROM activity_audit.log_stream()'),
	$n, 'log_stream() returns every event');

# The seq of a line.
sub seq_of
{
	my ($l) = @_;
	$l =~ /,"seq":(\d+),"lsn"/ or die "no seq in $l";
	return $1;
}

my @lines = map { [ file_lines($_) ] } @files;
for my $i (0 .. $#files)
{
	cmp_ok(scalar @{ $lines[$i] }, '>=', 2, "file $i has at least 2 lines");
}
my $f1 = $files[1];
my $f2 = $files[2];
(my $f1base = $f1) =~ s{.*/}{};
(my $f2base = $f2) =~ s{.*/}{};
my $s1 = seq_of($lines[1][0]);    # first seq of file 1
my $s2 = seq_of($lines[2][0]);    # first seq of file 2

# The pristine set, to put back after each case.
$node->stop;
my $pristine = PostgreSQL::Test::Utils::tempdir();
copy($_, $pristine) or die "copy $_: $!" for @files;

sub restore
{
	for my $f (@files)
	{
		(my $base = $f) =~ s{.*/}{};
		copy("$pristine/$base", $f) or die "restore $f: $!";
	}
}

# Tamper (node stopped), start, check verify() and StreamCheck, stop, restore.
sub tamper_case
{
	my ($name, $tamper, $bad_seq, $detail_re) = @_;
	$tamper->();
	my (undef, $perl_err) = check_stream($dir);
	ok(defined $perl_err, "$name: StreamCheck finds it too")
	  or diag('StreamCheck accepted the tampered stream');
	$node->start;
	my $row = $node->safe_psql('postgres',
		q{SELECT ok, first_bad_seq, detail FROM activity_audit.verify()});
	my ($ok, $first_bad, $detail) = split /\|/, $row, 3;
	is($ok, 'f', "$name: verify() not ok");
	is($first_bad, $bad_seq, "$name: first_bad_seq is $bad_seq");
	like($detail, $detail_re, "$name: detail names the problem")
	  or diag("detail: $detail");
	$node->stop;
	restore();
}

# 1. one character of a line edited: that line's hash no longer matches
tamper_case(
	'edited character',
	sub {
		my @l = @{ $lines[1] };
		$l[1] =~ s/xxxx/xxyx/ or die 'nothing to edit';
		write_lines($f1, @l);
	},
	$s1 + 1,
	qr/\Q$f1base\E:2: seq @{[$s1 + 1]}: hash mismatch: .*\(line edited\)/);

# 2. a line edited and its hash recomputed: the next line's prev_hash breaks
tamper_case(
	'edited and re-hashed',
	sub {
		my @l = @{ $lines[1] };
		(my $t = $l[0]) =~ s/\n\z//;
		$t =~ s/xxxx/xxyx/ or die 'nothing to edit';
		my $cut = rindex($t, ',"prev_hash"');
		my $prev = substr($t, $cut + 14, 64);
		my $h = chain_hash($prev, $t);
		substr($t, length($t) - 66, 64) = $h;
		$l[0] = "$t\n";
		write_lines($f1, @l);
	},
	$s1 + 1,
	qr/\Q$f1base\E:2: seq @{[$s1 + 1]}: prev_hash is [0-9a-f]{64}, but the hash of seq $s1 is [0-9a-f]{64} \(chain broken\)/);

# 3. a line deleted (the first of file 2)
tamper_case(
	'deleted line',
	sub {
		my @l = @{ $lines[2] };
		shift @l;
		write_lines($f2, @l);
	},
	$s2,
	qr/\Q$f2base\E:1: seq @{[$s2 + 1]}: seq gap: expected seq $s2 after seq @{[$s2 - 1]}, event $s2 missing \(a file missing, or lines deleted or reordered\)/);

# 4. a line inserted: the first line of file 1 repeated after itself
tamper_case(
	'duplicated line',
	sub {
		my @l = @{ $lines[1] };
		splice(@l, 1, 0, $l[0]);
		write_lines($f1, @l);
	},
	$s1 + 1,
	qr/\Q$f1base\E:2: seq $s1: seq repeated or out of order: expected seq @{[$s1 + 1]} after seq $s1 \(line inserted or lines reordered\)/);

# 5. two lines swapped
tamper_case(
	'swapped lines',
	sub {
		my @l = @{ $lines[1] };
		@l[ 0, 1 ] = @l[ 1, 0 ];
		write_lines($f1, @l);
	},
	$s1,
	qr/\Q$f1base\E:1: seq @{[$s1 + 1]}: seq gap: expected seq $s1 after seq @{[$s1 - 1]}, event $s1 missing \(a file missing, or lines deleted or reordered\)/);

# 6. a file in the middle removed: file 2 now starts where file 1 did
tamper_case(
	'missing middle file',
	sub { unlink($f1) or die "unlink $f1: $!"; },
	$s1,
	qr/\Q$f2base\E:1: seq $s2: seq gap: expected seq $s1 after seq @{[$s1 - 1]}, events? $s1(\.\.\d+)? missing \(a file missing/);

# 7. a middle file ending in half a line: its last event is torn
tamper_case(
	'middle file with a torn line',
	sub {
		my @l = @{ $lines[1] };
		$l[-1] = substr($l[-1], 0, 100);
		write_lines($f1, @l);
	},
	$s2 - 1,
	qr/\Q$f1base\E:\d+: incomplete line \(no trailing newline, \d+ bytes\) at the end of a file that is not the last/);

# 8. the first file removed: the stream does not start at seq 1
tamper_case(
	'missing first file',
	sub { unlink($files[0]) or die "unlink: $!"; },
	1,
	qr/:1: seq $s1: the stream does not start at seq 1: events 1\.\.@{[$s1 - 1]} missing \(the first file missing/);

# Restored, the stream is intact again.
$node->start;
is( $node->safe_psql('postgres', q{SELECT ok, events FROM activity_audit.verify()}),
	"t|$n", 'restored stream verifies');

# A half-written last line (the writer may be appending it) is neither an
# event nor a break: verify() and log_stream() ignore it.
my $last = $files[-1];
my $size = -s $last;
open(my $fh, '>>:raw', $last) or die "cannot append to $last: $!";
print $fh '{"timestamp":"2030-01-01T00:00:00.000000Z","level":"AUDIT"';
close $fh;
is( $node->safe_psql('postgres',
		q{SELECT ok, events FROM activity_audit.verify()}),
	"t|$n", 'a torn last line is not checked nor counted');
is($node->safe_psql('postgres', 'SELECT count(*), max(seq) FROM activity_audit.log_stream()'),
	"$n|$n", 'log_stream() skips the torn last line');
truncate($last, $size) or die "truncate: $!";

# And the stream goes on: a new event after all this still verifies.
$node->safe_psql('postgres', q{INSERT INTO t VALUES (100, 'after')});
$node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')});
is($node->safe_psql('postgres', q{SELECT ok, events FROM activity_audit.verify()}),
	't|' . ($n + 1), 'new events extend the verified chain');
stream_ok($dir, 'stream valid at the end (StreamCheck)');

$node->stop;
done_testing();

# 020_verify_tool.pl: the offline verifier activity_audit_verify.
#
# A real node writes a stream of 300 events over several files (rotation at
# 1kB, batches a second apart so the per-second file names differ).  The
# tool, found in PATH (the installed bindir), must say the stream is intact
# (exit 0, 300 events, seq 1..300), with the SHA extensions and with the
# portable SHA-256 code.  Then, on copies of the directory, each kind of
# tampering must make it exit 1 and name the right first bad seq and what
# is wrong:
#   - a character edited inside a line            -> hash mismatch at K
#   - a line edited and its hash recomputed       -> chain broken at K+1
#   - a line deleted                              -> seq gap at K
#   - a line duplicated right after itself        -> repeated seq at K+1
#   - two neighbouring lines swapped              -> seq gap at K
#   - a middle file deleted                       -> gap at the file's first seq
#   - the first file deleted                      -> incomplete at the start, 1
# A last line cut short (no trailing newline) is a partially written event:
# a warning, not counted, exit 0.  A usage or I/O error exits 2.
# StreamCheck agrees on every copy (valid or not).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use File::Path qw(rmtree);
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT file_lines write_lines);
use StreamCheck;

my $tool = 'activity_audit_verify';

my $node = audit_node('verify_tool');
my $dir = stream_dir($node);

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	});

# 5 batches, 1.1 s apart, of 10 transactions of 6 rows: 300 events
my $id = 0;
foreach my $batch (1 .. 5)
{
	foreach my $x (1 .. 10)
	{
		my $first = $id + 1;
		$id += 6;
		$node->safe_psql('postgres',
			"INSERT INTO t SELECT g, 'row ' || g FROM generate_series($first, $id) g"
		);
	}
	is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
		't', "batch $batch flushed");
	usleep(1_100_000) if $batch < 5;
}
my $N = 300;
is($id, $N, "$N rows inserted");
$node->stop;

my @events = read_stream($dir);
is(scalar(@events), $N, "StreamCheck: $N events, chain valid");
my @files = stream_files($dir);
cmp_ok(scalar(@files), '>=', 3, 'the stream spans at least 3 files')
  or diag(join("\n", @files));

# --- the intact stream ---------------------------------------------------

command_checks_all(
	[ $tool, $dir ], 0,
	[
		qr/^files checked: \Q@{[scalar @files]} of @{[scalar @files]}\E$/m,
		qr/^events verified: $N \(seq 1\.\.$N\)$/m,
		qr/^RESULT: OK/m
	],
	[qr/^$/],
	'intact stream: exit 0, all events verified');
{
	local $ENV{ACTIVITY_AUDIT_VERIFY_PORTABLE} = '1';
	command_checks_all(
		[ $tool, $dir ], 0,
		[
			qr/^SHA-256: portable$/m, qr/^events verified: $N \(seq 1\.\.$N\)$/m,
			qr/^RESULT: OK/m
		],
		[qr/^$/],
		'intact stream, portable SHA-256: exit 0');
}

# --- tampered copies ---------------------------------------------------

my $copies = 0;

# A fresh copy of the stream directory.
sub copy_stream
{
	my $copy = "$PostgreSQL::Test::Utils::tmp_check/verify_copy_" . ++$copies;
	rmtree($copy);
	mkdir($copy) or die "mkdir $copy: $!";
	foreach my $f (@files)
	{
		(my $base = $f) =~ s{.*/}{};
		copy($f, "$copy/$base") or die "copy $f: $!";
	}
	return $copy;
}

# Where each seq is: seq => [file basename, index of its line]
my %where;
foreach my $f (@files)
{
	(my $base = $f) =~ s{.*/}{};
	my @l = file_lines($f);
	for my $i (0 .. $#l)
	{
		$l[$i] =~ /,"seq":(\d+),"lsn"/ or die "no seq in $base line $i";
		$where{$1} = [ $base, $i ];
	}
}

# the middle file
(my $mid_base = $files[ int(@files / 2) ]) =~ s{.*/}{};
my @mid_seqs = sort { $a <=> $b } grep { $where{$_}[0] eq $mid_base } keys %where;
cmp_ok(scalar(@mid_seqs), '>=', 3, "middle file $mid_base has at least 3 events");
# K and K+1 inside the middle file, K not its first line
my $K = $mid_seqs[1];
my $mid_first = $mid_seqs[0];

# Apply $edit (a sub getting the list of lines of the file holding seq $seq
# and the line's index, returning the new list) to a copy of the stream.
sub tamper_line
{
	my ($seq, $edit) = @_;
	my $copy = copy_stream();
	my ($base, $i) = @{ $where{$seq} };
	my @l = file_lines("$copy/$base");
	write_lines("$copy/$base", $edit->($i, @l));
	return $copy;
}

sub expect_broken
{
	my ($copy, $first_bad, $what, $name) = @_;
	command_checks_all(
		[ $tool, $copy ], 1,
		[ qr/^first bad seq: $first_bad$/m, $what, qr/^RESULT: BROKEN/m ],
		[qr/^$/], "$name: exit 1, first bad seq $first_bad");
	my (undef, $err) = check_stream($copy);
	ok(defined $err, "$name: StreamCheck also rejects it");
}

# 1. one character inside line K changed
my $copy = tamper_line(
	$K,
	sub {
		my ($i, @l) = @_;
		$l[$i] =~ s/"pad":"row /"pad":"rOw / or die "no pad in line";
		return @l;
	});
expect_broken($copy, $K,
	qr/^problem: \Q$mid_base\E:\d+: seq $K: hash mismatch: .*\(line edited\)$/m,
	'edited line');

# 2. line K edited and its own hash recomputed: the next link breaks
$copy = tamper_line(
	$K,
	sub {
		my ($i, @l) = @_;
		$l[$i] =~ s/"pad":"row /"pad":"rOw / or die "no pad in line";
		chomp(my $line = $l[$i]);
		$line =~ /,"prev_hash":"([0-9a-f]{64})","hash":"[0-9a-f]{64}"\}\z/
		  or die "no hash";
		my $h = chain_hash($1, $line);
		$line =~ s/"hash":"[0-9a-f]{64}"\}\z/"hash":"$h"}/;
		$l[$i] = "$line\n";
		return @l;
	});
expect_broken(
	$copy,
	$K + 1,
	qr/^problem: .*seq @{[$K+1]}: prev_hash is [0-9a-f]{64}, but the hash of seq $K is .*\(chain broken\)$/m,
	'edited line with recomputed hash');

# 3. line K deleted
$copy = tamper_line(
	$K,
	sub {
		my ($i, @l) = @_;
		splice(@l, $i, 1);
		return @l;
	});
expect_broken($copy, $K,
	qr/^problem: .*seq @{[$K+1]}: seq gap: expected seq $K after seq @{[$K-1]}, event $K missing/m,
	'deleted line');

# 4. line K duplicated right after itself
$copy = tamper_line(
	$K,
	sub {
		my ($i, @l) = @_;
		splice(@l, $i + 1, 0, $l[$i]);
		return @l;
	});
expect_broken($copy, $K + 1,
	qr/^problem: .*seq $K: seq repeated or out of order: expected seq @{[$K+1]} after seq $K/m,
	'inserted line');

# 5. lines K and K+1 swapped
$copy = tamper_line(
	$K,
	sub {
		my ($i, @l) = @_;
		@l[ $i, $i + 1 ] = @l[ $i + 1, $i ];
		return @l;
	});
expect_broken($copy, $K,
	qr/^problem: .*seq @{[$K+1]}: seq gap: expected seq $K after seq @{[$K-1]}/m,
	'reordered lines');

# 6. the middle file deleted
$copy = copy_stream();
unlink("$copy/$mid_base") or die "unlink: $!";
my $mid_last = $mid_seqs[-1];
expect_broken($copy, $mid_first,
	qr/^problem: .*:1: seq @{[$mid_last+1]}: seq gap: expected seq $mid_first after seq @{[$mid_first-1]}, events? $mid_first(\.\.$mid_last)? missing \(a file missing/m,
	'deleted middle file');

# 7. the first file deleted
$copy = copy_stream();
(my $first_base = $files[0]) =~ s{.*/}{};
unlink("$copy/$first_base") or die "unlink: $!";
expect_broken($copy, 1,
	qr/^problem: .*:1: seq \d+: the stream does not start at seq 1: events 1\.\.\d+ missing/m,
	'deleted first file');

# --- a partially written last line -------------------------------------

$copy = copy_stream();
(my $last_base = $files[-1]) =~ s{.*/}{};
{
	my @l = file_lines("$copy/$last_base");
	$l[-1] = substr($l[-1], 0, length($l[-1]) - 20);
	write_lines("$copy/$last_base", @l);
}
command_checks_all(
	[ $tool, $copy ], 0,
	[
		qr/^WARNING: \Q$last_base\E:\d+: the last line has no trailing newline .*partially written/m,
		qr/^events verified: @{[$N-1]} \(seq 1\.\.@{[$N-1]}\)$/m,
		qr/^RESULT: OK/m
	],
	[qr/^$/],
	'partial last line: warning, not counted, exit 0');

# the same cut in a file that is not the last one is damage
$copy = copy_stream();
{
	my @l = file_lines("$copy/$mid_base");
	$l[-1] = substr($l[-1], 0, length($l[-1]) - 20);
	write_lines("$copy/$mid_base", @l);
}
command_checks_all(
	[ $tool, $copy ], 1,
	[ qr/^first bad seq: $mid_last$/m, qr/incomplete line .* not the last/m ],
	[qr/^$/], 'cut line in a middle file: exit 1');

# --- usage and I/O errors ------------------------------------------------

command_checks_all([$tool], 2, [qr/^$/], [qr/no directory given/],
	'no argument: exit 2');
command_checks_all(
	[ $tool, "$PostgreSQL::Test::Utils::tmp_check/no_such_dir" ],
	2, [qr/^$/], [qr/could not open directory/],
	'missing directory: exit 2');
command_checks_all([ $tool, '--bogus', $dir ],
	2, [qr/^$/], [qr/unrecognized option/], 'unknown option: exit 2');
command_ok([ $tool, '--help' ], '--help: exit 0');

done_testing();

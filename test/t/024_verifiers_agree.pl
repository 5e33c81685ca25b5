# 024_verifiers_agree.pl: verify() and the offline activity_audit_verify give
# the same verdict on the same directory.
#
# Both check with src/common/stream_line.c; this test proves they also
# read the same files the same way.  A stream of several files is copied
# into one directory per case and damaged there; for each case verify()
# (pointed at the copy through audit.log_directory on a node whose writer
# only logs, so nothing writes into the copies) and the tool must agree on
# ok, first_bad_seq and the detail text, character for character.  The
# cases include the ones where the two used to differ: a file named
# exactly ".jsonl", an entry that cannot be examined, a directory named
# like a stream file, a non-stream line, an empty line.  Gap lines (WAL the
# writer could not read) leave the chain intact: both say ok and note the
# gaps in the same words; a line that ends like a gap line but lacks its
# form breaks the chain for both.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
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

my $node = audit_node('agree');
my $dir = stream_dir($node);
my $tool = 'activity_audit_verify';

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET audit.rotation_size = '1kB';
	SELECT pg_reload_conf();
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
});
usleep(300_000);
for my $x (1 .. 4)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, repeat('x', 300) FROM generate_series("
		  . (3 * $x - 2) . ", " . (3 * $x) . ") g");
	$node->safe_psql('postgres', "SELECT activity_audit.flush('30s')");
	usleep(1_100_000) if $x < 4;
}
my @files = stream_files($dir);
cmp_ok(scalar @files, '>=', 3, 'the stream spans at least 3 files');
stream_ok($dir, 'pristine stream valid');

# From now on the writer writes no file: the copies are only read.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET audit.sink = 'log';
	SELECT pg_reload_conf();
});

my $ncase = 0;
my %unreadable;    # case => lines log_stream() returned as unreadable

# A fresh copy of the stream, damaged by $damage->($copy, @basenames).
sub make_case
{
	my ($damage) = @_;
	my $copy = $PostgreSQL::Test::Utils::tmp_check . '/agree_' . ++$ncase;
	rmtree($copy);
	mkdir($copy) or die "mkdir $copy: $!";
	my @bases;
	for my $f (@files)
	{
		(my $b = $f) =~ s{.*/}{};
		copy($f, "$copy/$b") or die "copy $f: $!";
		push @bases, $b;
	}
	$damage->($copy, @bases);
	return $copy;
}

# Edit line $i (from 0) of file $b of $copy with $edit->(\@lines).
sub edit_file
{
	my ($path, $edit) = @_;
	my @l = file_lines($path);
	$edit->(\@l);
	write_lines($path, @l);
}

# Run both verifiers on $copy; they must agree.  $expect_ok: the verdict.
sub agree
{
	my ($name, $copy, $expect_ok) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ $tool, '-q', $copy ], '>', \$stdout, '2>', \$stderr);
	my $rc = $? >> 8;

	$node->safe_psql('postgres',
		"ALTER SYSTEM SET audit.log_directory = '$copy'; SELECT pg_reload_conf();");
	my ($ret, $out, $err) = $node->psql('postgres',
		q{SELECT ok, coalesce(first_bad_seq::text, ''), detail FROM activity_audit.verify()});

	if ($expect_ok eq 'error')
	{
		is($rc, 2, "$name: the tool fails with an error (exit 2)");
		isnt($ret, 0, "$name: verify() fails with an error too")
		  or diag("verify() said: $out");
		like($err, qr/could not (stat|open)/, "$name: verify()'s error names the file");
		return;
	}
	my ($ok, $bad, $detail) = split /\|/, $out, 3;
	is($ret, 0, "$name: verify() ran") or diag($err);
	my ($lret, $lout, $lerr) = $node->psql('postgres',
		q{SELECT count(*) FILTER (WHERE event ? 'unreadable_line') FROM activity_audit.log_stream()});
	is($lret, 0, "$name: log_stream() reads the directory") or diag($lerr);
	$unreadable{$name} = $lout;
	is($ok, $expect_ok ? 't' : 'f', "$name: verify() verdict");
	is($rc, $expect_ok ? 0 : 1, "$name: tool exit status");
	if ($expect_ok)
	{
		like($stdout, qr/^RESULT: OK/m, "$name: tool says OK");
		my ($gaps) = $stdout =~ /^gaps: (.*)$/m;
		like($detail, qr/; \Q$gaps\E\z/, "$name: same note of the gaps")
		  if defined $gaps;
		return;
	}
	my ($tbad) = $stdout =~ /^first bad seq: (\d+)$/m;
	my ($tproblem) = $stdout =~ /^problem: (.*)$/m;
	is($tbad, $bad, "$name: same first bad seq ($bad)");
	is($tproblem, $detail, "$name: same detail");
}

# Recompute seq and the chain of every line of $copy, in stream order, as
# the writer would have written them.
sub rechain
{
	my ($copy, @bases) = @_;
	my $prev = '0' x 64;
	my $seq = 0;
	for my $b (@bases)
	{
		my @out;
		for my $l (file_lines("$copy/$b"))
		{
			chomp $l;
			$seq++;
			$l =~ s/,"seq":[0-9]+,/,"seq":$seq,/ or die "no seq: $l";
			$l =~ s/,"prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\z// or die;
			my $hash = sha256_hex($prev . $l);
			push @out, $l . ',"prev_hash":"' . $prev . '","hash":"' . $hash . '"}' . "\n";
			$prev = $hash;
		}
		write_lines("$copy/$b", @out);
	}
}

# A gap line (src/common/stream_format.h) in place of line $i of file $b.
sub put_gap
{
	my ($copy, $b, $i, $reason, $to) = @_;
	edit_file(
		"$copy/$b",
		sub {
			my $ts = '2026-01-02T03:04:05.000006Z';
			my $zero = '0' x 64;
			$_[0][$i] =
			    '{"timestamp":"' . $ts . '","level":"AUDIT","name":"audit.gap",'
			  . '"message":"WAL_LOST: test","event_type":"WAL_LOST",'
			  . '"reason":"' . $reason . '","system_identifier":"7000000000000000001",'
			  . '"timeline":1,"txid_upper_bound":900,'
			  . '"lost_from_lsn":"0/1000000","lost_to_lsn":"' . $to . '",'
			  . '"seq":0,"lsn":"' . $to . '","committed_at":"' . $ts . '",'
			  . '"prev_hash":"' . $zero . '","hash":"' . $zero . '"}' . "\n";
		});
}

agree('pristine', make_case(sub { }), 1);
agree('a gap line',
	make_case(sub {
		my ($c, @b) = @_;
		put_gap($c, $b[1], 1, 'slot_invalidated', '0/2000000');
		rechain($c, @b);
	}), 1);
agree('two gap lines',
	make_case(sub {
		my ($c, @b) = @_;
		put_gap($c, $b[0], 0, 'wal_removed', '0/2000000');
		put_gap($c, $b[-1], 0, 'slot_missing', '0/3000000');
		rechain($c, @b);
	}), 1);
agree('a line that ends like a gap line without its form',
	make_case(sub {
		my ($c, @b) = @_;
		put_gap($c, $b[1], 1, 'Not_A_Reason', '0/2000000');
		rechain($c, @b);
	}), 0);
agree('file named exactly .jsonl',
	make_case(sub { my ($c) = @_; write_lines("$c/.jsonl", "not a stream line\n"); }), 1);
agree('directory named like a stream file',
	make_case(sub { my ($c) = @_; mkdir("$c/zz.jsonl") or die; }), 1);
agree('other files ignored',
	make_case(sub { my ($c) = @_; write_lines("$c/notes.txt", "x\n"); }), 1);
agree('edited character',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { $_[0][1] =~ s/xxxx/xxyx/ or die; });
	}), 0);
agree('deleted line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { splice(@{ $_[0] }, 1, 1); });
	}), 0);
agree('duplicated line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { splice(@{ $_[0] }, 1, 0, $_[0][0]); });
	}), 0);
agree('swapped lines',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { @{ $_[0] }[ 0, 1 ] = @{ $_[0] }[ 1, 0 ]; });
	}), 0);
agree('empty line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { splice(@{ $_[0] }, 1, 0, "\n"); });
	}), 0);
agree('not a stream line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]",
			sub { splice(@{ $_[0] }, 1, 0, qq({"seq":5,"lsn":"0/1","x":1}\n)); });
	}), 0);
agree('a line that is not JSON',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { splice(@{ $_[0] }, 1, 0, "not json at all\n"); });
	}), 0);
is($unreadable{'a line that is not JSON'}, 1,
	'log_stream() returns the damaged line as an unreadable_line row');
is($unreadable{'pristine'}, 0, 'log_stream(): no unreadable line in the pristine stream');
agree('middle file removed',
	make_case(sub { my ($c, @b) = @_; unlink("$c/$b[1]") or die; }), 0);
agree('first file removed',
	make_case(sub { my ($c, @b) = @_; unlink("$c/$b[0]") or die; }), 0);
agree('middle file ends in half a line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[1]", sub { $_[0][-1] = substr($_[0][-1], 0, 50); });
	}), 0);
agree('last file ends in half a line',
	make_case(sub {
		my ($c, @b) = @_;
		edit_file("$c/$b[-1]", sub { $_[0][-1] = substr($_[0][-1], 0, 50); });
	}), 1);
agree('dangling symlink named like a stream file',
	make_case(sub {
		my ($c) = @_;
		symlink("$c/nowhere", "$c/zz.jsonl") or die "symlink: $!";
	}), 'error');
agree('unreadable stream file',
	make_case(sub { my ($c, @b) = @_; chmod(0000, "$c/$b[1]") or die; }), 'error');

done_testing();

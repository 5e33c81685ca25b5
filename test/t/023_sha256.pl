# 023_sha256.pl: the SHA-256 code of the hash chain (src/common/sha256.c), which
# the writer, verify() and activity_audit_verify share.
#
# test/unit/sha256_check.c is compiled against it and prints digests of
# messages of every length 0..300 added in pieces of 1, 3, 55, 56, 63, 64,
# 65, 128 bytes or at once, and of a 64-byte prefix followed by the
# message.  Each must equal Digest::SHA's, with the portable code and with
# the SHA extensions (when this CPU has them; otherwise the portable code
# runs twice and the test says so).

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use FindBin;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

my $top = "$FindBin::RealBin/../..";
my $bin = tempdir(CLEANUP => 1) . '/sha256_check';
my $cc = $ENV{CC} // 'cc';

my ($ok, $out, $err) = (0, '', '');
{
	my @cmd = ($cc, '-O2', '-Wall', "-I$top/src", '-o', $bin,
		"$top/test/unit/sha256_check.c", "$top/src/common/sha256.c");
	my $rc = system(@cmd);
	ok($rc == 0, 'the check program compiles against src/common/sha256.c')
	  or BAIL_OUT("cannot compile: @cmd");
}

foreach my $accel (0, 1)
{
	my $text = `$bin $accel`;
	is($? >> 8, 0, "accel=$accel: runs");
	my @lines = split /\n/, $text;
	my $impl = shift @lines;
	if ($accel == 0)
	{
		is($impl, 'portable', 'accel=0 chooses the portable code');
	}
	else
	{
		note("accel=1 chose: $impl");
		ok($impl eq 'x86 SHA extensions' || $impl eq 'portable',
			"accel=1 chooses a known implementation ($impl)");
	}

	my ($n, @bad) = (0);
	foreach my $line (@lines)
	{
		my ($len, $how, $hex) = split / /, $line;
		my $msg = join '', map { chr(($_ * 131 + $len) & 0xff) } 0 .. $len - 1;
		$msg = ('p' x 64) . $msg if $how eq 'prefixed';
		push @bad, $line if sha256_hex($msg) ne $hex;
		$n++;
	}
	is($n, 301 * 10, "accel=$accel: every length and piece size printed");
	is(scalar(@bad), 0, "accel=$accel ($impl): every digest equals Digest::SHA's")
	  or diag(join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
}

done_testing();

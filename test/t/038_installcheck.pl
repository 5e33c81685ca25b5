# 038_installcheck.pl: "make installcheck" against a running server, as
# PGXS users run it.
#
# On a server that lacks a setting the suites need, it stops before them
# with one error naming the setting; on a server with them, the pg_regress
# and isolation suites pass, and pass again when run a second time against
# the same server (its stream then holds the first run's events, and its
# databases are made afresh).

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest;

my $srcdir = $ENV{TESTDIR} or die 'TESTDIR is not set (run through make installcheck)';
my $pg_config = `pg_config --bindir`;
chomp $pg_config;
$pg_config .= '/pg_config';

# A copy of what make installcheck reads, so its results and diffs stay
# apart from the suites tools/test.sh runs in the source directory.
my $dir = PostgreSQL::Test::Utils::tempdir('installcheck');
system('cp', '-R', map("$srcdir/$_", qw(Makefile activity_audit.control sql expected test)), $dir) == 0
  or die "cannot copy the suites to $dir";
system('rm', '-rf', "$dir/test/t") == 0 or die;
mkdir "$dir/src";

my $node = audit_node('installcheck', conf => "max_prepared_transactions = 0\n");

sub installcheck
{
	my ($out, $err) = ('', '');
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	delete local $ENV{PGDATABASE};
	# not the variables of the make that runs this test (REGRESS= ...)
	delete local $ENV{MAKEFLAGS};
	delete local $ENV{MAKELEVEL};
	delete local $ENV{MFLAGS};
	# (make puts its command line's variables into the environment too)
	delete local @ENV{qw(REGRESS ISOLATION TAP_TESTS PROVE_TESTS TEMP_INSTANCE REGRESS_OPTS ISOLATION_OPTS)};
	my $ok = IPC::Run::run([ 'make', '-C', $dir, "PG_CONFIG=$pg_config", 'installcheck' ],
		'>', \$out, '2>', \$err);
	return ($ok, "$out\n$err");
}

my ($ok, $out) = installcheck();
ok(!$ok, 'make installcheck fails on a server without prepared transactions');
like($out, qr/make installcheck cannot run against this server: max_prepared_transactions must be 2 or more \(it is 0\)/,
	'and says which setting, before any suite runs');
unlike($out, qr/test setup +\.\.\./, 'no suite ran');

$node->append_conf('postgresql.conf', "max_prepared_transactions = 4\n");
$node->restart;

foreach my $run (1, 2)
{
	($ok, $out) = installcheck();
	ok($ok, "run $run: make installcheck passes against the running server")
	  or diag($out, -e "$dir/regression.diffs" ? slurp_file("$dir/regression.diffs") : '',
		-e "$dir/output_iso/regression.diffs" ? slurp_file("$dir/output_iso/regression.diffs") : '');
	my @suites = ($out =~ /All ([0-9]+) tests passed/g);
	is(scalar @suites, 2, "run $run: both suites (pg_regress, isolation) passed");
	cmp_ok($suites[0] // 0, '>=', 13, "run $run: every pg_regress test ran");
}

$node->stop;
done_testing();

# 011_rotation.pl: file rotation, file mode and the sink setting.
#
# With audit.rotation_size = '1kB' a handful of small transactions spread
# over several files.  The files' names (second resolution) must sort in
# stream order, a file never splits the events of one transaction, a file is
# left only once it is past the size (and kept past it only while a new name
# would repeat its own second), seq and the hash chain run on across
# the files, and files created after audit.file_mode = '0640' was reloaded
# have that mode.  audit.rotation_age is accepted and shown.  audit.sink =
# 'file,log' also writes each delivered event, and only those, into the
# server log as an "AUDIT: {...}" line; 'log' alone writes only there; a
# bogus sink is refused by ALTER SYSTEM and by a reload, naming the value.
#
# Every delivered event is compared, text for text, with what a test_decoding
# slot saw in the WAL (minus the "sig" key the writer strips).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT wal_events strip_stream_keys wait_log);
use StreamCheck;

my $node = audit_node('rotation');
my $dir = stream_dir($node);
my $rotation_bytes = 1024;

$node->safe_psql(
	'postgres', q{
	SELECT 1 FROM pg_create_logical_replication_slot('td', 'test_decoding');
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	SELECT activity_audit.track('t');
	});


# Every line of the stream, in name order: [file basename, line text].
sub stream_lines
{
	my @lines;
	foreach my $f (stream_files($dir))
	{
		(my $base = $f) =~ s{.*/}{};
		open(my $fh, '<:raw', $f) or die "cannot open $f: $!";
		while (my $l = <$fh>)
		{
			chomp $l;
			push @lines, [ $base, $l ];
		}
		close $fh;
	}
	return @lines;
}


# The stream is valid and holds exactly the committed events, in order.
sub stream_matches_wal
{
	my ($what) = @_;
	my $events = stream_ok($node, "$what: stream valid (seq 1..N, chain)");
	my @wal = wal_events($node);
	my @got = map { strip_stream_keys($_->[1]) // "(bad line) $_->[1]" }
	  stream_lines();
	is(scalar @$events, scalar @wal, "$what: as many delivered events as committed ones");
	is_deeply(\@got, \@wal, "$what: delivered events are the committed events, in commit order");
	return scalar @wal;
}


sub mode_of
{
	my ($f) = @_;
	return sprintf('%04o', (stat $f)[2] & 07777);
}

sub set_and_reload
{
	my ($sql, $param, $want) = @_;
	$node->safe_psql('postgres', $sql);
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', "SHOW $param", $want)
	  or die "$param did not become $want";
	# the writer gets SIGHUP with everybody else; give it time to act on it
	usleep(500_000);
}

my $pad = 'x' x 40;

###########################################################################
# A first file under the default mode
###########################################################################
$node->safe_psql('postgres', "INSERT INTO t VALUES (0, '$pad')");
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'first event delivered');
my @first_files = stream_files($dir);
is(scalar @first_files, 1, 'one file before rotation is configured');
is(mode_of($first_files[0]), '0600', 'default audit.file_mode is 0600');

###########################################################################
# Rotation by size
###########################################################################
set_and_reload(q{ALTER SYSTEM SET audit.rotation_size = '1kB'},
	'audit.rotation_size', '1kB');
set_and_reload(q{ALTER SYSTEM SET audit.file_mode = '0640'},
	'audit.file_mode', '0640');

# transactions of 1 to 5 events (each event line is some 700 bytes), with
# short pauses: two or three fall in the same second, so some files grow past
# the size before a new name is available
my @sizes = (1, 1, 5, 1, 2, 1, 3, 1, 1, 4, 1);
my $id = 1;
foreach my $n (@sizes)
{
	my $sql = "BEGIN;\n";
	for (1 .. $n)
	{
		$sql .= "INSERT INTO t VALUES ($id, '$pad');\n";
		$id++;
	}
	$sql .= "COMMIT;\n";
	$node->safe_psql('postgres', $sql);
	usleep(450_000);
}
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'rotated events delivered');

my $n_events = stream_matches_wal('after rotation');
is($n_events, $id, 'one event per inserted row');

my @files = stream_files($dir);
cmp_ok(scalar @files, '>=', 4, 'several files: ' . scalar @files);
is($files[0], $first_files[0], 'the first file is still the first');
foreach my $f (@files)
{
	(my $base = $f) =~ s{.*/}{};
	like($base, qr/\Aaudit-\d{8}T\d{6}\.jsonl\z/,
		"file name $base follows audit.log_filename");
}

# file modes: the first file was created before the reload
foreach my $f (@files[ 1 .. $#files ])
{
	(my $base = $f) =~ s{.*/}{};
	is(mode_of($f), '0640', "file $base created after the reload has mode 0640");
}
is(mode_of($files[0]), '0600', 'the older file keeps its mode');

# A transaction's events are in one file, and a file is left only once it is
# past the size.  A file past the size is kept while a new name would not
# sort after its own (same second): so a transaction appended to a file
# already past the size must have committed no later than the second in the
# file's name.
{
	my %file_of_txid;
	my %bytes_of_file;
	my %last_txid;
	my $split = 0;
	my @late;
	foreach my $l (stream_lines())
	{
		my ($base, $text) = @$l;
		$text =~ /"txid":([0-9]+)/ or die "no txid in $text";
		my $txid = $1;
		$split++ if exists $file_of_txid{$txid} && $file_of_txid{$txid} ne $base;
		$file_of_txid{$txid} = $base;
		if (!defined $last_txid{$base} || $last_txid{$base} ne $txid)
		{
			# first event of a transaction in this file
			$last_txid{$base} = $txid;
			if (($bytes_of_file{$base} // 0) >= $rotation_bytes)
			{
				$text =~ /"committed_at":"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)/
				  or die "no committed_at in $text";
				my $commit_sec = "$1$2$3T$4$5$6";
				$base =~ /audit-(\d{8}T\d{6})\.jsonl/;
				push @late, "txid $txid committed $commit_sec into $base"
				  if $commit_sec gt $1;
			}
		}
		$bytes_of_file{$base} += length($text) + 1;
	}
	is($split, 0, 'no transaction is split across files');
	is_deeply(\@late, [],
		'no transaction went into a file past the size once a new name was available');

	foreach my $f (@files[ 0 .. $#files - 1 ])
	{
		(my $base = $f) =~ s{.*/}{};
		is(-s $f, $bytes_of_file{$base}, "$base holds only whole lines");
		cmp_ok(-s $f, '>=', $rotation_bytes, "$base was left past the rotation size");
	}
}

my ($cur) = $node->safe_psql('postgres',
	q{SELECT current_file FROM activity_audit.writer_status()});
(my $last_base = $files[-1]) =~ s{.*/}{};
like($cur, qr/\Q$last_base\E\z/, 'writer_status().current_file is the last file');

###########################################################################
# Rotation by age: accepted and shown (a minute is too long to wait for)
###########################################################################
set_and_reload(q{ALTER SYSTEM SET audit.rotation_age = '1min'},
	'audit.rotation_age', '1min');
is($node->safe_psql('postgres', 'SHOW audit.rotation_age'),
	'1min', 'audit.rotation_age = 1min is accepted');
set_and_reload(q{ALTER SYSTEM SET audit.rotation_age = '2h'},
	'audit.rotation_age', '2h');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET audit.rotation_age = 'soon'});
isnt($ret, 0, 'audit.rotation_age = soon is refused');
like($stderr, qr/audit\.rotation_age/, 'the error names audit.rotation_age');

###########################################################################
# A bogus sink is refused, by ALTER SYSTEM and by a reload
###########################################################################
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET audit.sink = 'bogus'});
isnt($ret, 0, q{ALTER SYSTEM SET audit.sink = 'bogus' fails});
like($stderr, qr/audit\.sink/, 'the error names audit.sink');
like($stderr, qr/"bogus"/, 'the error names the value');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET audit.sink = 'file,bogus'});
isnt($ret, 0, q{ALTER SYSTEM SET audit.sink = 'file,bogus' fails});
like($stderr, qr/bogus/, 'the error names the unknown sink');

# through the configuration file: the reload refuses it, the sink stays
my $log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "audit.sink = 'bogus'\n");
$node->reload;
ok( wait_log(
		$node,
		qr/invalid value for parameter "audit\.sink": "bogus"/, $log_offset, 30),
	'a reload with audit.sink = bogus logs an error naming the value');
is($node->safe_psql('postgres', 'SHOW audit.sink'),
	'file', 'audit.sink stays file');
$node->safe_psql('postgres', "INSERT INTO t VALUES ($id, '$pad')");
$id++;
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'delivery goes on after the refused reload');
$n_events = stream_matches_wal('after the refused reload');
$node->append_conf('postgresql.conf', "audit.sink = 'file'\n");
$node->reload;

###########################################################################
# audit.sink = 'file,log': the same events also in the server log
###########################################################################
my $log = slurp_file($node->logfile);
my @audit_lines = ($log =~ /^.*AUDIT: (\{.*)$/mg);
is(scalar @audit_lines, 0, 'no AUDIT lines in the server log with audit.sink = file');

$log_offset = -s $node->logfile;
set_and_reload(q{ALTER SYSTEM SET audit.sink = 'file,log'}, 'audit.sink', 'file,log');
my $before = $n_events;
$node->safe_psql(
	'postgres', qq{
	BEGIN;
	INSERT INTO t VALUES ($id, 'line "one"');
	UPDATE t SET pad = 'changed' WHERE id = 0;
	COMMIT;
	DELETE FROM t WHERE id = 1;
	});
$id++;
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'file,log: delivered');
$n_events = stream_matches_wal('file,log');
is($n_events, $before + 3, 'file,log: three more events in the files');

my @wal = wal_events($node);
my @new = @wal[ $before .. $#wal ];
$log = substr(slurp_file($node->logfile), $log_offset);
@audit_lines = ($log =~ /^\S+ \S+ \S+ \[\d+\] LOG:  AUDIT: (\{.*)$/mg);
is(scalar @audit_lines, 3, 'file,log: exactly three AUDIT lines in the server log');
is_deeply(\@audit_lines, \@new,
	'file,log: the AUDIT lines are the delivered events, in order');
my @all_audit = ($log =~ /AUDIT: \{/g);
is(scalar @all_audit, 3, 'file,log: no other AUDIT text in the server log');

###########################################################################
# audit.sink = 'log': only the server log
###########################################################################
$log_offset = -s $node->logfile;
set_and_reload(q{ALTER SYSTEM SET audit.sink = 'log'}, 'audit.sink', 'log');
my $bytes_before = join(',', map { -s $_ } stream_files($dir));
$node->safe_psql('postgres', "INSERT INTO t VALUES ($id, 'log only')");
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}),
	't', 'log: delivered');
@wal = wal_events($node);
$log = substr(slurp_file($node->logfile), $log_offset);
@audit_lines = ($log =~ /^\S+ \S+ \S+ \[\d+\] LOG:  AUDIT: (\{.*)$/mg);
is_deeply(\@audit_lines, [ $wal[-1] ], 'log: the one event is in the server log');
is(join(',', map { -s $_ } stream_files($dir)),
	$bytes_before, 'log: the files are untouched');

$node->stop;
done_testing();

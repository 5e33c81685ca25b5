# Copyright: activity_audit contributors
#
# 040_key_file.pl: audit.key_file keeps the event key out of the data
# directory (and so out of base backups), and keys rotate without losing
# the events that wait under the old one.
#
#  (a) A server that made its key in the data directory moves to a key
#      file: a prepared transaction signed under the old key, committed
#      after the move, is delivered, not rejected (the data directory's key
#      is still accepted, with a WARNING at start naming it); once that key
#      is removed the WARNING is gone and no new one is made there.
#  (b) A base backup taken then holds no event key.
#  (c) Rotation: a new key on the file's first line, the old one below it;
#      a prepared transaction signed under the old key is delivered after
#      the restart.  With the old key's line removed, what was signed under
#      it is rejected as forged (why the README says to wait for flush()).
#  (d) The server refuses to start, naming the problem, with a key file that
#      is relative, inside the data directory, readable by others, missing,
#      empty or not made of keys.
#  A restart reads the WAL again from the slot: what an earlier run judged
#  is neither counted nor reported again (it would be, under a retired key).
#  Every delivered line is in one valid chain, seq 1, 2, ...

use strict;
use warnings;

use File::Path qw(make_path);
use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status wait_log);
use StreamCheck;

my $node = audit_node('keyfile', conf => "max_prepared_transactions = 4\nmax_wal_senders = 4\n");
$node->safe_psql('postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE t (id int PRIMARY KEY, v text);
	SELECT activity_audit.track('t');
	INSERT INTO t VALUES (1, 'under the data directory key');
});
my $datadir_key = $node->data_dir . '/pg_activity_audit/event_key';
ok(-f $datadir_key, 'without audit.key_file the key is made in the data directory');

my $keydir = PostgreSQL::Test::Utils::tempdir();
chmod 0700, $keydir;
my $keyfile = "$keydir/audit.keys";

# a random key of 32 hex digits
sub new_key
{
	return join '', map { sprintf '%02x', int(rand(256)) } 1 .. 16;
}

# write the key file with these lines, mode 0600 unless given
sub write_keys
{
	my ($path, $mode, @lines) = @_;
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh map { "$_\n" } @lines;
	close $fh;
	chmod $mode // 0600, $path;
}

sub flushed
{
	return $node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')});
}

sub ids
{
	return join ',', map { $_->{instance_id} // 'null' } read_stream($node);
}

is(flushed(), 't', 'first event delivered');

###########################################################################
# (a) from the data directory's key to a key file, with a backlog
###########################################################################
$node->safe_psql('postgres',
	q{BEGIN; INSERT INTO t VALUES (2, 'signed under the old key, committed later'); PREPARE TRANSACTION 'p_old'});
my $key_b = new_key();
write_keys($keyfile, 0600, "# activity_audit event keys: the first signs, all verify", $key_b);
$node->append_conf('postgresql.conf', "audit.key_file = '$keyfile'\n");
my $offset = -s $node->logfile;
$node->restart;
like(slurp_file($node->logfile, $offset),
	qr/WARNING:  activity_audit still accepts the event key in "pg_activity_audit\/event_key"/,
	'a key left in the data directory is named at start');
$node->safe_psql('postgres', q{COMMIT PREPARED 'p_old'});
$node->safe_psql('postgres', q{INSERT INTO t VALUES (3, 'under the key file')});
is(flushed(), 't', 'delivered after the move');
is(ids(), '1,2,3', 'the backlog signed under the old key is delivered, not rejected');
is(writer_status($node)->{forged_rejected}, 0, 'nothing rejected');

is($node->safe_psql('postgres', q{
	CREATE ROLE plain LOGIN;
	SET ROLE plain;
	SELECT count(*) FROM pg_settings WHERE name = 'audit.key_file' AND setting <> ''}),
	'0', 'an ordinary role does not see where the key file is');

unlink $datadir_key or die "cannot remove $datadir_key: $!";
$offset = -s $node->logfile;
$node->restart;
unlike(slurp_file($node->logfile, $offset), qr/still accepts the event key/,
	'no WARNING once the data directory key is gone');
unlike(slurp_file($node->logfile, $offset), qr/rejected a message/,
	'the WAL read again at start, signed under the removed key, is not reported as forged');
ok(!-e $datadir_key, 'and no new key is made there');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'only the key file')});
is(flushed(), 't', 'delivered under the key file alone');

###########################################################################
# (b) a base backup carries no key
###########################################################################
my $backup = $node->backup_dir . '/b1';
$node->command_ok([ 'pg_basebackup', '-D', $backup, '-X', 'none', '-d', $node->connstr('postgres') ],
	'base backup taken');
my @found;
find(sub { push @found, $File::Find::name if $_ eq 'event_key' || $_ eq 'audit.keys' }, $backup);
is(scalar(@found), 0, 'the backup holds no event key');

###########################################################################
# (c) rotation
###########################################################################
$node->safe_psql('postgres',
	q{BEGIN; INSERT INTO t VALUES (5, 'signed under B, committed under C'); PREPARE TRANSACTION 'p_b'});
my $key_c = new_key();
write_keys($keyfile, 0600, $key_c, $key_b);
$node->restart;
$node->safe_psql('postgres', q{COMMIT PREPARED 'p_b'});
$node->safe_psql('postgres', q{INSERT INTO t VALUES (6, 'under C')});
is(flushed(), 't', 'delivered after the rotation');
is(ids(), '1,2,3,4,5,6', 'the backlog signed under the old key is delivered after the rotation');
is(writer_status($node)->{forged_rejected}, 0, 'nothing rejected');

# without the old key's line, what waits under it cannot be told from a forgery
$node->safe_psql('postgres',
	q{BEGIN; INSERT INTO t VALUES (7, 'signed under C, committed after C is dropped'); PREPARE TRANSACTION 'p_c'});
write_keys($keyfile, 0600, new_key());
$offset = -s $node->logfile;
$node->restart;
$node->safe_psql('postgres', q{COMMIT PREPARED 'p_c'});
$node->safe_psql('postgres', q{INSERT INTO t VALUES (8, 'under D')});
is(flushed(), 't', 'later events delivered');
is(ids(), '1,2,3,4,5,6,8', 'an event signed under a removed key is not delivered');
ok(writer_status($node)->{forged_rejected} > 0, 'it is counted as rejected');
ok(wait_log($node, qr/WARNING:  activity_audit writer rejected a message/, $offset, 10), 'and reported in the log');

###########################################################################
# (d) key files the server refuses
###########################################################################
sub refused
{
	my ($setting, $re, $name) = @_;
	$node->stop;
	$node->append_conf('postgresql.conf', "audit.key_file = '$setting'\n");
	my $off = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), "$name: the server does not start");
	like(slurp_file($node->logfile, $off), $re, "$name: the log says why");
}

my $good = $keyfile;
refused('audit.keys', qr/FATAL:  audit.key_file "audit.keys" is not an absolute path/, 'relative path');
my $inside = $node->data_dir . '/audit.keys';
write_keys($inside, 0600, new_key());
refused($inside, qr/FATAL:  audit.key_file ".*" is inside the data directory/, 'inside the data directory');
unlink $inside;
write_keys("$keydir/open.keys", 0644, new_key());
refused("$keydir/open.keys", qr/FATAL:  audit.key_file ".*" has group or world access.*\n.*HINT:  .*0600/, 'readable by others');
refused("$keydir/missing.keys", qr/FATAL:  could not open audit.key_file ".*missing.keys": No such file/, 'missing');
write_keys("$keydir/empty.keys", 0600, '# nothing yet');
refused("$keydir/empty.keys", qr/FATAL:  audit.key_file ".*" holds no key/, 'no key');
write_keys("$keydir/bad.keys", 0600, new_key(), 'not-a-key');
refused("$keydir/bad.keys", qr/FATAL:  audit.key_file ".*" line 2 is not a key/, 'not a key');

# back to the good file: everything still there, one chain
$node->append_conf('postgresql.conf', "audit.key_file = '$good'\n");
write_keys($keyfile, 0600, new_key(), $key_c);
$offset = -s $node->logfile;
$node->start;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (9, 'after the refusals')});
is(flushed(), 't', 'delivered after a good start');
is(writer_status($node)->{forged_rejected}, 0, 'what an earlier run rejected is not counted again');
unlike(slurp_file($node->logfile, $offset), qr/rejected a message/, 'nor reported again');
my $events = stream_ok($node, 'one valid chain');
is(join(',', map { $_->{instance_id} } @$events), '1,2,3,4,5,6,8,9', 'every event once');

$node->stop;
done_testing();

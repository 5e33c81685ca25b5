# Copyright: activity_audit contributors
#
# 050_limits.pl: an ordinary role cannot make an event the writer cannot
# read back, and the writer keeps delivering.
#
#  (a) The attack of the security issue, as the table owner (no special
#      privilege): an audit.user_id of nearly 1GB.  The SET fails, naming
#      the setting and audit.max_context_size; the session's next write is
#      audited as usual; a crash right after (before a checkpoint) and the
#      restart lose nothing.
#  (b) audit.max_event_size (reload): a row whose event is larger fails,
#      naming the table, the size and the setting, and changes nothing;
#      excluding the large column makes it fit; the same in the full WAL
#      format; a header too large (a big audit.user_info) fails the same
#      way, before anything is written.
#  (c) The largest event allowed is delivered like any other.
#  The stream is one valid chain of exactly the committed rows.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT writer_status);
use StreamCheck;

my $node = audit_node('limits');
$node->safe_psql('postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE ROLE app LOGIN;
	GRANT CREATE ON SCHEMA public TO app;
});
$node->safe_psql('postgres', q{
	SET ROLE app;
	CREATE TABLE t (id int PRIMARY KEY, body text);
	CREATE TABLE big (id int PRIMARY KEY, body text);
	RESET ROLE;
	SELECT activity_audit.track('t');
	SELECT activity_audit.track('big');
});

# run as the app role; returns (ok, stdout, stderr)
sub as_app
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', "SET ROLE app;\n$sql", stdout => \$out, stderr => \$err,
		on_error_stop => 1);
	return ($ret == 0, $out, $err);
}

sub flushed
{
	return $node->safe_psql('postgres', q{SELECT activity_audit.flush('60s')});
}

sub ids
{
	return join ',', map { ($_->{table} // '') . ':' . ($_->{instance_id} // 'null') } read_stream($node);
}

###########################################################################
# (a) the issue's attack
###########################################################################
my ($ok, $out, $err) = as_app(q{
	SELECT set_config('audit.user_id', repeat('u', 1073740000 - 451), false);
	INSERT INTO t VALUES (1, 'never');
});
ok(!$ok, 'a nearly 1GB audit.user_id is refused');
like($err, qr/ERROR:  value of "audit.user_id" is too long \(1073739549 bytes\)/, 'naming the setting and the size');
like($err, qr/DETAIL:  audit.max_context_size allows at most 64 kB/, 'and the limit');
($ok, $out, $err) = as_app(q{
	SELECT set_config('audit.user_id', repeat('u', 60000), false) IS NOT NULL;
	INSERT INTO t VALUES (1, 'one');
});
ok($ok, 'a large but allowed audit.user_id, and a write') or diag($err);
is(flushed(), 't', 'delivered');
$node->stop('immediate');
$node->start;
as_app(q{INSERT INTO t VALUES (2, 'after the crash')});
is(flushed(), 't', 'the server starts after a crash, and delivers');
is(ids(), 't:1,t:2', 'both rows, once each');
is(length(((read_stream($node))[0])->{user_id}), 60000, 'with the user_id as set');

###########################################################################
# (b) audit.max_event_size
###########################################################################
sub reload_with
{
	my ($conf) = @_;
	$node->append_conf('postgresql.conf', $conf);
	$node->reload;
	# new connections read the new value
	for (1 .. 50)
	{
		my ($name, $value) = $conf =~ /^(\S+)\s*=\s*'?([^'\n]*)/;
		last if $node->safe_psql('postgres', "SHOW $name") eq $value;
		select(undef, undef, undef, 0.1);
	}
}

reload_with("audit.max_event_size = '16kB'\n");
($ok, $out, $err) = as_app(q{INSERT INTO big VALUES (1, repeat('b', 20000))});
ok(!$ok, 'a row whose event is larger than audit.max_event_size fails');
like($err, qr/ERROR:  audit event of table public\.big is too large \(\d+ bytes\)/, 'naming the table and the size');
like($err, qr/DETAIL:  audit.max_event_size allows at most 16 kB per event; the change is not made\./, 'and the setting');
like($err, qr/HINT:  Exclude the large columns/, 'with what to do');
is($node->safe_psql('postgres', 'SELECT count(*) FROM big'), '0', 'nothing was inserted');
($ok, $out, $err) = as_app(q{INSERT INTO big VALUES (2, repeat('b', 8000))});
ok($ok, 'a smaller row is written') or diag($err);
($ok, $out, $err) = as_app(q{UPDATE big SET body = repeat('c', 9000) WHERE id = 2});    # 8000 old + 9000 new
ok(!$ok, 'an UPDATE whose old and new values together are too large fails');
$node->safe_psql('postgres', q{SELECT activity_audit.track('big', exclude => '{body}')});
($ok, $out, $err) = as_app(q{INSERT INTO big VALUES (3, repeat('b', 20000))});
ok($ok, 'with the large column excluded the row fits') or diag($err);

# a header (compact format) too large: a big audit.user_info
($ok, $out, $err) = as_app(q{
	SELECT set_config('audit.user_info', json_build_object('bio', repeat('x', 30000))::text, false) IS NOT NULL;
	INSERT INTO t VALUES (3, 'small row, large context');
});
ok(!$ok, 'a header larger than audit.max_event_size fails the write');
like($err, qr/ERROR:  audit event of table public\.t is too large/, 'with the same error');

reload_with("audit.wal_format = 'full'\n");
$node->safe_psql('postgres', q{SELECT activity_audit.track('big')});
($ok, $out, $err) = as_app(q{INSERT INTO big VALUES (4, repeat('b', 20000))});
ok(!$ok, 'in the full format too');
like($err, qr/ERROR:  audit event of table public\.big is too large/, 'with the same error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM big WHERE id = 4'), '0', 'nothing was inserted');

###########################################################################
# (c) the largest allowed event is delivered
###########################################################################
reload_with("audit.wal_format = 'compact'\n");
reload_with("audit.max_event_size = '1MB'\n");
($ok, $out, $err) = as_app(q{INSERT INTO big VALUES (5, repeat('d', 1000000))});
ok($ok, 'a row of nearly 1MB is written under a 1MB limit') or diag($err);
as_app(q{INSERT INTO t VALUES (4, 'after the big one')});
is(flushed(), 't', 'and delivered');
my @events = read_stream($node);
is(ids(), 't:1,t:2,big:2,big:3,big:5,t:4', 'exactly the committed rows, once each, in order');
is(length($events[4]{instance_repr}{body}), 1000000, 'the big row whole');
is(writer_status($node)->{last_error}, undef, 'the writer reports no error');
stream_ok($node, 'one valid chain');

$node->stop;
done_testing();

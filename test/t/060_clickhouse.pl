# 060_clickhouse.pl: contrib/clickhouse/schema.sql works in a real
# ClickHouse (Debian's 18.16), fed the way contrib/vector/vector.toml ships.
#
# A throwaway ClickHouse server (its own configuration in a temporary
# directory, free ports, run as the test's user) loads schema.sql.  A
# workload in PostgreSQL (several users and models, UPDATE, DELETE,
# TRUNCATE, an application event, row data that looks like the event's own
# keys) makes a stream; its lines are turned into rows as vector.toml's
# remap transform does and ingested twice, as an at-least-once shipper may.
# Then, against PostgreSQL's own view (log_stream(), history()):
#   - the table holds every line twice, yet FINAL and uniqExact count each
#     once: counts per user, model and event type, and the per-user table;
#   - one row's history, in order, with its changes and microseconds;
#   - every row's line hashes to its hash (the line is kept byte for byte);
#   - the other side of a fork (same seq, another line) stays a row of its
#     own and the fork query finds it;
#   - schema.sql's example queries run as written.
# vector.toml itself is checked as far as can be without Vector: it parses
# as TOML, its remap sets exactly the table's columns (and the fields this
# test sends), and it reads from the beginning, checkpoints, acknowledges.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use JSON::PP;
use B ();
use Encode qw(decode);

use FindBin;
use lib $FindBin::RealBin;
use AuditTest;
use StreamCheck;

# clickhouse-server lives in /usr/sbin, which a non-root PATH may lack
sub find_program
{
	my ($name) = @_;
	foreach my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/usr/bin')
	{
		return "$dir/$name" if $dir ne '' && -x "$dir/$name";
	}
	return undef;
}
my $server_bin = find_program('clickhouse-server');
my $client_bin = find_program('clickhouse-client');
plan skip_all => 'ClickHouse is not installed (Debian: apt-get install clickhouse-server clickhouse-client; tools/test.sh does)'
  unless $server_bin && $client_bin;

my $top = "$FindBin::RealBin/../..";
my $schema_file = "$top/contrib/clickhouse/schema.sql";
my $vector_file = "$top/contrib/vector/vector.toml";

# --- a throwaway ClickHouse ----------------------------------------------
my $chdir = PostgreSQL::Test::Utils::tempdir();
my $tcp_port = PostgreSQL::Test::Cluster::get_free_port();
my $http_port = PostgreSQL::Test::Cluster::get_free_port();
mkdir "$chdir/$_" foreach qw(data tmp user_files format_schemas);
PostgreSQL::Test::Utils::append_to_file(
	"$chdir/config.xml", qq{<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$chdir/server.log</log>
        <errorlog>$chdir/error.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <path>$chdir/data/</path>
    <tmp_path>$chdir/tmp/</tmp_path>
    <user_files_path>$chdir/user_files/</user_files_path>
    <format_schema_path>$chdir/format_schemas/</format_schema_path>
    <users_config>$chdir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>5368709120</mark_cache_size>
    <max_concurrent_queries>20</max_concurrent_queries>
    <timezone>UTC</timezone>
</yandex>
});
PostgreSQL::Test::Utils::append_to_file(
	"$chdir/users.xml", q{<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
});
my $server = IPC::Run::start([ $server_bin, "--config-file=$chdir/config.xml" ],
	'<', \undef, '>', "$chdir/stdout.log", '2>', "$chdir/stderr.log");
END { $server->kill_kill(grace => 5) if $server; }

# clickhouse-client against it; dies on failure, returns stdout
sub ch
{
	my ($query, $input, @settings) = @_;
	my ($out, $err) = ('', '');
	my @cmd = ($client_bin, '--host', '127.0.0.1', '--port', $tcp_port,
		'--database', 'audit', @settings, '--query', $query);
	IPC::Run::run(\@cmd, '<', \($input // ''), '>', \$out, '2>', \$err)
	  or die "clickhouse-client failed on \"$query\": $err";
	chomp $out;
	return $out;
}

my $up = 0;
foreach (1 .. 300)
{
	my ($out, $err);
	if (IPC::Run::run([ $client_bin, '--host', '127.0.0.1', '--port', $tcp_port,
		'--query', 'CREATE DATABASE IF NOT EXISTS audit' ], '>', \$out, '2>', \$err))
	{
		$up = 1;
		last;
	}
	usleep(100_000);
}
ok($up, 'a throwaway clickhouse-server is up')
  or BAIL_OUT('ClickHouse did not start: '
	  . join(' ', map { -e $_ ? slurp_file($_) : '' } "$chdir/stderr.log", "$chdir/error.log"));
note 'ClickHouse ' . ch('SELECT version()');

# schema.sql as a user loads it
{
	my ($out, $err);
	my $ok = IPC::Run::run([ $client_bin, '--host', '127.0.0.1', '--port', $tcp_port,
		'--database', 'audit', '--multiquery' ], '<', $schema_file, '>', \$out, '2>', \$err);
	ok($ok, 'schema.sql loads') or diag $err;
}

# --- the shipper's transformation (vector.toml's remap, field for field) ---
my @req_str = qw(hash prev_hash lsn timestamp committed_at level name message event_type);
my @opt_str = qw(request_id service_name model instance_id user_id schema table db db_user
  session_user application_name client_addr);
my @opt_int = qw(backend_pid txid);
my @nested = qw(instance_repr changes user_info extra);
my @shipped_fields = (qw(stream host line seq), @req_str, @opt_str, @opt_int, @nested);

# VRL's string() takes strings only, int() integers only
sub is_json_string
{
	my ($v) = @_;
	return 0 if !defined $v || ref $v;
	my $f = B::svref_2object(\$v)->FLAGS;
	return ($f & B::SVp_POK) && !($f & (B::SVp_IOK | B::SVp_NOK));
}

my $canonical = JSON::PP->new->canonical;    # VRL objects encode sorted
my $row_json = JSON::PP->new->utf8->canonical;

sub shipped_row
{
	my ($raw, $stream, $host) = @_;
	my $line = decode('UTF-8', $raw, Encode::FB_CROAK);
	my $ev = JSON::PP->new->decode($line);
	my %r = (stream => $stream, host => $host, line => $line, seq => 0 + $ev->{seq});
	foreach my $k (@req_str)
	{
		is_json_string($ev->{$k}) or die "line seq $ev->{seq}: \"$k\" is not a string";
		$r{$k} = $ev->{$k};
	}
	$r{$_} = is_json_string($ev->{$_}) ? $ev->{$_} : undef foreach @opt_str;
	foreach my $k (@opt_int)
	{
		my $v = $ev->{$k};
		$r{$k} = (defined $v && !ref $v && !is_json_string($v) && $v =~ /\A-?[0-9]+\z/) ? 0 + $v : undef;
	}
	foreach my $k (@nested)
	{
		$r{$k} = $canonical->encode($ev->{$k}) if defined $ev->{$k};
	}
	return $row_json->encode(\%r) . "\n";
}

# what Vector's clickhouse sink sets on every INSERT
my @insert_settings = ('--input_format_import_nested_json=1',
	'--input_format_skip_unknown_fields=1', '--date_time_input_format=best_effort');

sub ingest
{
	my ($rows) = @_;
	ch('INSERT INTO audit_events FORMAT JSONEachRow', join('', @$rows), @insert_settings);
}

# --- vector.toml ----------------------------------------------------------
my ($toml_json, $toml_err) = ('', '');
my $py = q{
import json, sys, tomllib
with open(sys.argv[1], 'rb') as f:
    print(json.dumps(tomllib.load(f)))
};
SKIP:
{
	skip 'python3 with tomllib (3.11) is needed to parse vector.toml', 5
	  unless IPC::Run::run([ 'python3', '-c', $py, $vector_file ], '>', \$toml_json, '2>', \$toml_err);
	my $v = decode_json($toml_json);
	my ($src) = grep { $_->{type} eq 'file' } values %{ $v->{sources} };
	my ($remap) = grep { $_->{type} eq 'remap' } values %{ $v->{transforms} };
	my ($sink) = grep { $_->{type} eq 'clickhouse' } values %{ $v->{sinks} };
	ok( $v->{data_dir} && $src->{read_from} eq 'beginning' && $src->{max_line_bytes} >= 256 * 1024 * 1024,
		'vector.toml: file source with a checkpoint directory, from the beginning, lines up to 256MB');
	ok($sink->{acknowledgements}{enabled} && $sink->{table} eq 'audit_events',
		'vector.toml: the clickhouse sink writes audit_events with acknowledgements');
	ok($sink->{date_time_best_effort} && $sink->{skip_unknown_fields} && $sink->{format} eq 'json_each_row',
		'vector.toml: the sink sends JSONEachRow with the settings this test uses');
	my $vrl = $remap->{source};
	my ($obj) = $vrl =~ /^row = \{\n(.*?)^\}/ms;
	my %vrl_fields = map { $_ => 1 } ($obj =~ /^\s*"(\w+)":/mg), ($vrl =~ /\brow\.(\w+) =/g);
	my %columns = map { $_ => 1 } split /\n/,
	  ch(q{SELECT name FROM system.columns WHERE database = 'audit' AND table = 'audit_events'
	        AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')});
	is_deeply([ sort keys %vrl_fields ], [ sort keys %columns ],
		'vector.toml sets exactly the columns of audit_events');
	is_deeply([ sort keys %vrl_fields ], [ sort @shipped_fields ],
		'and exactly the fields this test ships');
}

# --- a stream ---------------------------------------------------------------
my $node = audit_node('ch');
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION activity_audit;
	CREATE TABLE orders (id int PRIMARY KEY, status text, user_id text, doc jsonb);
	SELECT activity_audit.track('orders', model_name => 'Order');
	CREATE TABLE notes (id int PRIMARY KEY, body text);
	SELECT activity_audit.track('notes');
	});
# row data that looks like the event's own keys must not become its columns
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT activity_audit.set_context('alice', '{"email": "alice@example.com"}', 'req-1');
	INSERT INTO orders VALUES
	  (1, 'new', 'mallory', '{"user_id": "mallory", "seq": 1, "hash": "x", "db": "other"}'),
	  (2, 'new', 'mallory', NULL), (3, 'new', NULL, '[1, "two", {"three": null}]');
	COMMIT;
	BEGIN;
	SELECT activity_audit.set_context('bob', request_id => 'req-2');
	UPDATE orders SET status = 'paid' WHERE id = 1;
	INSERT INTO notes VALUES (1, 'first'), (2, E'Gr\u00fc\u00dfe "quoted"\nnew line \\ and a tab\t');
	COMMIT;
	BEGIN;
	SELECT activity_audit.set_context('alice');
	UPDATE orders SET status = 'shipped', doc = '{"note": "\u2713"}' WHERE id = 1;
	DELETE FROM notes WHERE id = 2;
	COMMIT;
	UPDATE orders SET status = 'lost' WHERE id = 2;
	BEGIN;
	SELECT activity_audit.set_context('bob');
	DELETE FROM orders WHERE id = 3;
	TRUNCATE notes;
	SELECT activity_audit.log_event('app.export', 'EXPORT', '{"model": {"x": 1}, "rows": 3}');
	COMMIT;
	});
is($node->safe_psql('postgres', q{SELECT activity_audit.flush('30s')}), 't', 'the workload is delivered');

my @lines;
foreach my $f (stream_files(stream_dir($node)))
{
	open(my $fh, '<:raw', $f) or die "cannot open $f: $!";
	while (my $l = <$fh>) { chomp $l; push @lines, $l; }
	close $fh;
}
my @events = read_stream($node);
my $n = scalar @lines;
is($n, scalar @events, "the stream has $n valid lines");
my $stream = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');

# --- ship it twice ------------------------------------------------------------
my @rows = map { shipped_row($_, $stream, 'pg1') } @lines;
ingest(\@rows);
# the second delivery comes in other batches, as after a resend
my $half = int($n / 2);
ingest([ @rows[ 0 .. $half - 1 ] ]);
ingest([ @rows[ $half .. $n - 1 ] ]);

is(ch('SELECT count() FROM audit_events'), 2 * $n, 'every line is in the table twice');
is(ch('SELECT count() FROM audit_events FINAL'), $n, 'FINAL counts each line once');
is(ch('SELECT uniqExact(stream, seq, hash) FROM audit_events'), $n, 'and so does uniqExact(stream, seq, hash)');

# counts per user, model and event type, as PostgreSQL sees them (a key
# that is not a string is no column value, as the shipper does)
my $pg_counts = $node->safe_psql(
	'postgres', q{
	SELECT coalesce(u, '\N') || E'\t' || coalesce(m, '\N') || E'\t' || t || E'\t' || count(*)
	  FROM (SELECT CASE jsonb_typeof(event->'user_id') WHEN 'string' THEN event->>'user_id' END AS u,
	               CASE jsonb_typeof(event->'model') WHEN 'string' THEN event->>'model' END AS m,
	               event->>'event_type' AS t
	          FROM activity_audit.log_stream()) s
	 GROUP BY u, m, t ORDER BY 1});
my $ch_counts = ch(q{SELECT user_id, model, event_type, count() FROM audit_events FINAL
	GROUP BY user_id, model, event_type});
is( join("\n", sort split /\n/, $ch_counts),
	join("\n", sort split /\n/, $pg_counts),
	'counts per user, model and event type are PostgreSQL\'s, once each');
like($ch_counts, qr/^alice\tOrder\tCREATE\t3$/m, 'alice created three orders');
like($ch_counts, qr/^bob\t\\N\tEXPORT\t1$/m, 'a payload "model" that is an object is no model')
  or diag $ch_counts;

my $pg_users = $node->safe_psql('postgres',
	q{SELECT user_id || E'\t' || count(*) FROM activity_audit.log_stream()
	   WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY 1});
is(ch('SELECT user_id, count() FROM audit_events_by_user FINAL GROUP BY user_id ORDER BY user_id'),
	$pg_users, 'the per-user table counts each user\'s events once');
is(ch(q{SELECT count() FROM audit_events_by_user FINAL WHERE user_id = 'mallory'}), '0',
	'row data named user_id is not a user');

# one row's history, as history() gives it
my @pg_hist = split /\n/, $node->safe_psql(
	'postgres', q{
	SELECT seq || E'\t' || event_type || E'\t' || coalesce(user_id, '\N') || E'\t'
	       || coalesce(event->'changes', 'null'::jsonb)::text || E'\t' || (event->>'timestamp')
	  FROM activity_audit.history('orders', '1') ORDER BY seq});
my @ch_hist = split /\n/, ch(q{
	SELECT seq, event_type, user_id, ifNull(changes, 'null'),
	       concat(replaceOne(toString(timestamp), ' ', 'T'), '.',
	              substring(toString(1000000 + timestamp_us), 2), 'Z')
	  FROM audit_events FINAL
	 WHERE stream = '} . $stream . q{' AND db = 'postgres' AND schema = 'public'
	   AND table = 'orders' AND instance_id = '1'
	 ORDER BY seq});
is(scalar @ch_hist, 3, 'the row\'s history has its three events');
for my $i (0 .. $#pg_hist)
{
	my @p = split /\t/, $pg_hist[$i];
	my @c = split /\t/, $ch_hist[$i] // '';
	is_deeply(
		[ @c[ 0 .. 2 ], decode_json($c[3] // 'null'), $c[4] ],
		[ @p[ 0 .. 2 ], decode_json($p[3]), $p[4] ],
		"history event $i: seq, type, user, changes and microseconds agree");
}

is( ch(q{SELECT count() FROM audit_events
	      WHERE hash != lower(hex(SHA256(concat(prev_hash, substring(line, 1, length(line) - 154)))))}),
	'0', 'every row\'s line hashes to its hash: the line is kept byte for byte');
# the typed times are the events', to the microsecond
my $iso = sub { my ($t, $us) = @_; $t =~ s/ /T/; sprintf('%s.%06dZ', $t, $us) };
my @ch_times = map { [ split /\t/ ] } split /\n/,
  ch('SELECT seq, toString(timestamp), timestamp_us, toString(committed_at), committed_at_us
	    FROM audit_events FINAL ORDER BY seq');
is_deeply(
	[ map { [ $_->[0], $iso->($_->[1], $_->[2]), $iso->($_->[3], $_->[4]) ] } @ch_times ],
	[ map { [ $_->{seq}, $_->{timestamp}, $_->{committed_at} ] } @events ],
	'timestamp and committed_at with their microseconds are the events\'');

# the other side of a fork: the last seq again, another line (the old
# primary of an asynchronous failover went on alone)
my $last = $lines[-1];
my $prev = $events[-1]{prev_hash};
(my $forked = $last) =~ s/"db_user":"[^"]*"/"db_user":"someone_else"/ or die 'no db_user';
$forked =~ s/,"hash":"[0-9a-f]{64}"\}\z/',"hash":"' . chain_hash($prev, $forked) . '"}'/e;
validate_lines([ map { "$_\n" } @lines[ 0 .. $n - 2 ], $forked ], 'fork');
ingest([ shipped_row($forked, $stream, 'pg-old-primary') ]);
is(ch('SELECT count() FROM audit_events FINAL'), $n + 1, 'the fork\'s line is a row of its own');
is( ch(q{SELECT seq, arraySort(groupArray(host)) FROM audit_events FINAL
	      GROUP BY stream, seq HAVING uniqExact(hash) > 1}),
	"$events[-1]{seq}\t['pg-old-primary','pg1']",
	'the fork query finds it, with the servers of both sides');

# the example queries in schema.sql's comments run as written
my @examples = grep { /\S/ } split /;\s*/, join("\n",
	map { /^--\s{7}(.*)$/ ? $1 : () } split /\n/, slurp_file($schema_file));
is(scalar @examples, 6, 'schema.sql has six example queries');
my @results = map { ch($_) } @examples;
pass('they all run in this ClickHouse');
like($results[4], qr/\A$stream\t$events[-1]{seq}\t/, 'the first fork query finds the fork');
is($results[5], '', 'the hash query finds no line that differs from its hash');

$node->stop;
done_testing();

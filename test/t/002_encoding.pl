# 002_encoding.pl: events are pure-ASCII JSON whatever the database encoding.
#
# The pg_regress suite runs in a UTF8 database.  Here the same kind of row
# is audited in a LATIN1 database (text is converted to Unicode before it is
# escaped, so 'é' becomes \u00e9 and the event still equals to_jsonb()) and
# in a SQL_ASCII database (bytes have no declared meaning: valid UTF-8 is
# escaped as such, any other byte as the code point of the same value, so
# nothing is dropped and the event stays valid JSON).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use AuditTest qw(:DEFAULT events_of_messages);

my $node = audit_node('encoding');

# Raw event texts since the last call, read through the database's
# test_decoding slot (slots are per cluster, so each database has its own),
# put together from the compact WAL format's messages (AuditTest.pm), one per
# line.
sub raw_events
{
	my ($db) = @_;
	return join "\n", events_of_messages(split /\n/, $node->safe_psql(
		$db, q{
		SELECT substring(data FROM 'content:(.*)$')
		  FROM pg_logical_slot_get_changes('enc_' || current_database(), NULL, NULL)
		 WHERE data LIKE 'message: transactional: 1 prefix: activity_audit, %'
		}));
}

# Create a database of the given encoding with a tracked table and a slot.
sub prepare_db
{
	my ($db, $encoding) = @_;
	$node->safe_psql('postgres',
		qq{CREATE DATABASE $db ENCODING '$encoding' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
	$node->safe_psql(
		$db, q{
		CREATE EXTENSION activity_audit;
		CREATE TABLE t (id int PRIMARY KEY, s text, j jsonb, a text[]);
		SELECT activity_audit.track('t');
		SELECT 1 FROM pg_create_logical_replication_slot('enc_' || current_database(), 'test_decoding');
		});
}

###########################################################################
# LATIN1: converted, escaped, equal to to_jsonb()
###########################################################################
prepare_db('latin1db', 'LATIN1');

# psql sends UTF-8; the server converts it to LATIN1
$node->safe_psql(
	'latin1db', q{
	SET client_encoding = 'UTF8';
	INSERT INTO t VALUES (1, 'café Ø ß Ã©', '{"k": "naïve"}', ARRAY['ü', 'plain']);
	SET audit.user_id = 'zoë';
	UPDATE t SET s = 'crème' WHERE id = 1;
	});

my @raw = split /\n/, raw_events('latin1db');
is(scalar @raw, 2, 'LATIN1: two events');
unlike($raw[0], qr/[^\x20-\x7e]/, 'LATIN1: event is printable ASCII');
# 'Ã©' is stored as the bytes C3 A9, which read as UTF-8 would be 'é': only a
# real conversion from LATIN1 gives two characters
like($raw[0], qr/"s":"caf\\u00e9 \\u00d8 \\u00df \\u00c3\\u00a9"/,
	'LATIN1: text escaped from its Unicode code points');
like($raw[0], qr/"j":\{"k":"na\\u00efve"\}/, 'LATIN1: jsonb escaped');
like($raw[1], qr/"user_id":"zo\\u00eb"/, 'LATIN1: settings escaped');

# The server parses the escapes back into LATIN1: the UPDATE event's row is
# the table's row, as to_jsonb() sees it.
my $raw_sql = $raw[1];
$raw_sql =~ s/'/''/g;
is( $node->safe_psql(
		'latin1db', qq{
		SELECT ('$raw_sql'::jsonb->'instance_repr') = to_jsonb(t) FROM t WHERE id = 1}),
	't',
	'LATIN1: the event parses back to to_jsonb() of the row');

###########################################################################
# SQL_ASCII: UTF-8 escaped as such, other bytes kept as code points
###########################################################################
prepare_db('asciidb', 'SQL_ASCII');

$node->safe_psql(
	'asciidb', q{
	SET client_encoding = 'SQL_ASCII';
	INSERT INTO t VALUES (1, E'caf\xc3\xa9', '{}', NULL);
	INSERT INTO t VALUES (2, E'bad \xff\xfe end', '{}', NULL);
	INSERT INTO t VALUES (3, E'cut \xc3', '{}', NULL);
	});

@raw = split /\n/, raw_events('asciidb');
is(scalar @raw, 3, 'SQL_ASCII: three events');
foreach my $i (0 .. 2)
{
	unlike($raw[$i], qr/[^\x20-\x7e]/,
		"SQL_ASCII: event $i is printable ASCII");
}
like($raw[0], qr/"s":"caf\\u00e9"/, 'SQL_ASCII: valid UTF-8 escaped');
like($raw[1], qr/"s":"bad \\u00ff\\u00fe end"/,
	'SQL_ASCII: invalid bytes kept as code points');
like($raw[2], qr/"s":"cut \\u00c3"/,
	'SQL_ASCII: a truncated sequence at the end is kept');

$node->stop;
done_testing();

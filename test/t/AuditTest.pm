# AuditTest.pm: what the TAP tests of activity_audit share.
#
# audit_node() makes and starts a cluster that preloads the library and can
# decode the audit messages (wal_level = logical), as the product is meant
# to run.

package AuditTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(audit_node);

# A started node with the library preloaded and logical decoding enabled.
sub audit_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'activity_audit'
wal_level = logical
max_replication_slots = 4
});
	$node->start;
	return $node;
}

1;

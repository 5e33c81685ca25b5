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
our @EXPORT_OK = qw(writer_status);

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

# activity_audit.writer_status() as a hash ref, NULLs as undef.
sub writer_status
{
	my ($node, $db) = @_;
	my @cols =
	  qw(pid read_lsn delivered_lsn lag_bytes events_delivered bytes_written
	  current_file pending_xacts spilled_bytes forged_rejected last_error);
	my $row = $node->safe_psql($db // 'postgres',
		'SELECT ' . join(", ", map { "coalesce(${_}::text, '<null>')" } @cols)
		  . ' FROM activity_audit.writer_status()');
	my @v = split /\|/, $row, -1;
	my %h;
	@h{@cols} = @v;
	$h{$_} eq '<null>' and $h{$_} = undef foreach @cols;
	return \%h;
}

1;

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
use PostgreSQL::Test::Utils qw(slurp_file);
use Time::HiRes qw(usleep);

use StreamCheck qw(stream_files);

our @EXPORT = qw(audit_node);
our @EXPORT_OK = qw(writer_status wal_messages wal_events events_of_messages strip_stream_keys
  stream_texts wait_log file_lines write_lines spill_files proc_io event_ids);

# A started node with the library preloaded and logical decoding enabled.
# Options: extra => [initdb arguments], conf => more postgresql.conf text
# (set before the first start, e.g. for settings the writer reads then).
sub audit_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => $opt{extra} // []);
	$node->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'activity_audit'
wal_level = logical
max_replication_slots = 4
});
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
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

# The audit messages in the WAL, raw (with "sig"), peeked from the
# test_decoding slot $slot (default "td") without consuming them.
sub wal_messages
{
	my ($node, $slot) = @_;
	$slot //= 'td';
	my $out = $node->safe_psql(
		'postgres', qq{
		SELECT substr(data, strpos(data, 'content:') + 8)
		  FROM pg_logical_slot_peek_changes('$slot', NULL, NULL)
		 WHERE data LIKE 'message: transactional: 1 prefix: activity\\_audit, %'});
	return grep { $_ ne '' } split /\n/, $out;
}

# The top-level elements of a JSON array's text, each as written.
sub json_array_texts
{
	my ($t) = @_;
	my @el;
	my ($depth, $start, $in_str) = (0, 1, 0);
	for (my $i = 0; $i < length($t); $i++)
	{
		my $c = substr($t, $i, 1);
		if ($in_str)
		{
			if ($c eq '\\') { $i++; }
			elsif ($c eq '"') { $in_str = 0; }
			next;
		}
		if ($c eq '"') { $in_str = 1; }
		elsif ($c eq '[' || $c eq '{') { $depth++; }
		elsif ($c eq ']' || $c eq '}')
		{
			$depth--;
			push @el, substr($t, $start, $i - $start) if $depth == 0;
		}
		elsif ($c eq ',' && $depth == 1)
		{
			push @el, substr($t, $start, $i - $start);
			$start = $i + 1;
		}
	}
	return @el;
}

# The members of a JSON object's text: [key text, value text] each, as written.
sub json_object_members
{
	my ($t) = @_;
	(my $inner = $t) =~ s/^\{//;
	return () if $inner eq '}';
	my @m;
	foreach my $el (json_array_texts("[$inner"))
	{
		$el =~ /^("(?:[^"\\]|\\.)*"):(.*)\z/s or die "not a member: $el";
		push @m, [ $1, $2 ];
	}
	return @m;
}

# An UPDATE's "changes" from a compact row's old values and its row.
sub full_changes
{
	my ($repr, $old) = @_;
	my %new = map { $_->[0] => $_->[1] } json_object_members($repr);
	return '{'
	  . join(',', map { "$_->[0]:{\"old\":$_->[1],\"new\":" . ($new{ $_->[0] } // die "no $_->[0] in $repr") . '}' }
		  json_object_members($old))
	  . '}';
}

# The events in a list of WAL messages, as the writer delivers their text,
# put together as README's "The WAL messages" tells a logical-decoding
# consumer: a full-format event without its "sig" key; a compact row with
# the header it names (a message of release 0.1: without its "sig").
sub events_of_messages
{
	my (%header, @ev);
	foreach my $m (@_)
	{
		if ($m =~ /^\{"head":\{(.*?)\},"tail":\{(.*)\},"sig":"([0-9]+):([0-9]+):[0-9a-f]{16}"\}\z/s)
		{
			my ($head, $tail, $txid, $num) = ($1, $2, $3, $4);
			my $r = index($head, ',"request_id":');
			my $m_at = index($head, ',"model":"');
			$header{"$txid:$num"} = {
				level_name => substr($head, 0, $r),
				request => substr($head, $r + 1),
				model => substr($head, $m_at + 10, length($head) - $m_at - 11),
				tail => $tail };
		}
		elsif ($m =~ /^\[/)
		{
			my @e = json_array_texts($m);
			my ($txid) = ($e[-1] =~ /^"([0-9]+):/) or die "row without sig: $m";
			my $h = $header{"$txid:$e[-2]"} or die "row without its header: $m";
			my ($ts, $type, $id, $repr) = @e[ 0 .. 3 ];
			my $changes = @e == 7 ? ',"changes":' . full_changes($repr, $e[4]) : '';
			(my $tname = $type) =~ s/"//g;
			my $idpart = $id eq 'null' ? '' : ' (id: ' . substr($id, 1, -1) . ')';
			push @ev,
			  "{\"timestamp\":$ts,$h->{level_name},\"message\":\"$tname event by $h->{model}$idpart\","
			  . "$h->{request},\"event_type\":$type,\"instance_id\":$id,\"instance_repr\":$repr$changes,$h->{tail}}";
		}
		else
		{
			(my $e = $m) =~ s/,"sig":"(?:[0-9]+:[0-9]+:)?[0-9a-f]{16}"\}\z/}/
			  or die "event without sig: $m";
			push @ev, $e;
		}
	}
	return @ev;
}

# The events in the WAL (see wal_messages), as the writer delivers their text.
sub wal_events
{
	return events_of_messages(wal_messages(@_));
}

# A delivered line without the keys the writer adds, or undef if it does
# not end with them.
sub strip_stream_keys
{
	my ($l) = @_;
	$l =~
	  s/,"seq":[0-9]+,"lsn":"[0-9A-F]+\/[0-9A-F]+","committed_at":"[^"]+","prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\z/}/
	  or return undef;
	return $l;
}

# The lines of a file, with their newlines.
sub file_lines
{
	my ($f) = @_;
	open(my $fh, '<:raw', $f) or die "cannot open $f: $!";
	my @l = <$fh>;
	close $fh;
	return @l;
}

# Replace a file's contents with these lines (to tamper with a stream).
sub write_lines
{
	my ($f, @l) = @_;
	open(my $fh, '>:raw', $f) or die "cannot write $f: $!";
	print $fh @l;
	close $fh or die "cannot close $f: $!";
}

# Every delivered line of the stream in $dir, stripped as above; a line
# that does not end with the stream's keys is kept as "(bad line) ...".
sub stream_texts
{
	my ($dir) = @_;
	my @texts;
	foreach my $f (stream_files($dir))
	{
		open(my $fh, '<:raw', $f) or die "cannot open $f: $!";
		while (my $l = <$fh>)
		{
			chomp $l;
			push @texts, strip_stream_keys($l) // "(bad line) $l";
		}
		close $fh;
	}
	return @texts;
}

# Wait up to $secs seconds for the server log, from $offset on, to match $re.
sub wait_log
{
	my ($node, $re, $offset, $secs) = @_;
	for (1 .. $secs * 10)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}

# Names of the files in pg_activity_audit/spill of a node's data directory,
# sorted: where earlier versions of the writer spilled events to files.
# The writer writes no file there now (spilled events are read back from
# the WAL) and does not create the directory; a missing one gives ().
sub spill_files
{
	my ($node) = @_;
	opendir(my $dh, $node->data_dir . '/pg_activity_audit/spill')
	  or return ();
	my @f = sort grep { $_ ne '.' && $_ ne '..' } readdir($dh);
	closedir($dh);
	return @f;
}

# The I/O counters of a process (/proc/<pid>/io: rchar, wchar, read_bytes,
# write_bytes, ...) as a hash ref; {} when they cannot be read.
sub proc_io
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/io") or return {};
	my %io;
	while (<$fh>) { $io{$1} = $2 if /^(\w+):\s+(\d+)/; }
	close($fh);
	return \%io;
}

# The instance_id of each decoded event (read_stream), in stream order; a
# gap line is "gap".
sub event_ids
{
	my ($events) = @_;
	return [ map { $_->{name} eq 'audit.gap' ? 'gap' : $_->{instance_id} }
		  @$events ];
}

1;

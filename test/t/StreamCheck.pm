# StreamCheck.pm: read and validate the writer's JSON Lines stream.
#
# Usage (in a TAP test next to this file):
#
#   use FindBin; use lib $FindBin::RealBin; use StreamCheck;
#
# Functions (all exported):
#
#   stream_dir($node)
#       The file sink's directory of a node: $PGDATA/log (the default
#       audit.log_directory).
#
#   stream_files($dir)
#       The *.jsonl files of $dir, full paths, sorted by name (which is stream
#       order).  Empty list if the directory does not exist.
#
#   read_stream($node_or_dir)
#       Reads every *.jsonl file of the node's stream directory (or of the
#       directory given as a plain string) in name order and validates the
#       whole stream.  Returns the list of decoded events (hash refs, as
#       JSON::PP decodes them), in stream order.  Dies with a message naming
#       the file and line number on the first problem:
#         - a line that is not complete JSON (no trailing "\n", not decodable,
#           not an object, empty line);
#         - "seq" not exactly 1, 2, ..., N in order (gap, repeat, reordering);
#         - "prev_hash" not equal to the predecessor's "hash" (the first
#           event's must be 64 zeros), also across file boundaries;
#         - "hash" not equal to sha256_hex(prev_hash . text), where text is
#           the line up to but excluding its last `,"prev_hash"` key;
#         - "prev_hash"/"hash" in the text differ from the decoded values, or
#           "hash" is not the last key.
#       An empty stream (no files, or only empty files) returns ().
#       A gap line ("name":"audit.gap", "event_type":"WAL_LOST": WAL the
#       writer could not read; src/common/stream_format.h) is a link of the
#       chain like any line and is returned among the events.
#       Every line is checked on every call; decoded events are cached by
#       line text, so the same line read twice gives the same hash ref:
#       treat the events as read-only.
#
#   check_stream($node_or_dir)
#       Like read_stream but never dies: returns (\@events, $error) where
#       $error is undef when the stream is valid.  @events holds the events
#       read before the problem.
#
#   stream_ok($node_or_dir, $test_name)
#       One Test::More assertion "stream valid" (its diag shows the error);
#       returns an array ref of the events (those read before a problem).
#
#   validate_lines(\@lines [, $label])
#       The core check on a list of raw lines (each with its "\n"), as if they
#       were one stream; returns the events or dies.  For tests that build or
#       tamper with streams themselves.
#
#   chain_hash($prev_hash, $line)
#       The hash the spec requires for a raw line (without "\n") given its
#       predecessor's hash.

package StreamCheck;

use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More ();

our @EXPORT =
  qw(stream_dir stream_files read_stream check_stream stream_ok validate_lines chain_hash);

my $ZERO_HASH = '0' x 64;

# Decoded lines by their text, so that re-reading a growing stream only
# decodes the new lines (every check still runs on every line).
my %decoded;

sub stream_dir
{
	my ($node) = @_;
	return $node->data_dir . '/log';
}

sub stream_files
{
	my ($dir) = @_;
	return () unless -d $dir;
	opendir(my $dh, $dir) or die "StreamCheck: cannot open directory $dir: $!";
	my @files = sort grep { /\.jsonl\z/ && -f "$dir/$_" } readdir($dh);
	closedir($dh);
	return map { "$dir/$_" } @files;
}

sub chain_hash
{
	my ($prev_hash, $line) = @_;
	my $cut = rindex($line, ',"prev_hash"');
	die "StreamCheck: line has no ,\"prev_hash\" key" if $cut < 0;
	return sha256_hex($prev_hash . substr($line, 0, $cut));
}

# Validate a stream given as a list of [label, raw line] pairs.
sub _validate
{
	my ($items, $out) = @_;
	my $json = JSON::PP->new->utf8;    # lines are UTF-8 bytes
	my @events;
	$out //= \@events;
	my $prev = $ZERO_HASH;
	my $want_seq = 1;

	foreach my $it (@$items)
	{
		my ($where, $raw) = @$it;
		die "StreamCheck: $where: incomplete line (no trailing newline): "
		  . _clip($raw) . "\n"
		  unless $raw =~ /\n\z/;
		(my $line = $raw) =~ s/\n\z//;
		die "StreamCheck: $where: empty line\n" if $line eq '';
		die "StreamCheck: $where: raw carriage return or newline inside a line\n"
		  if $line =~ /[\r\n]/;

		# JSON::PP is slow; a line already decoded is taken from the cache
		my $ev = $decoded{$line} //= eval { $json->decode($line) };
		if (!defined $ev)
		{
			(my $why = $@) =~ s/ at \S+ line \d+\.\n?\z//;
			die "StreamCheck: $where: not complete JSON ($why): "
			  . _clip($line) . "\n";
		}
		die "StreamCheck: $where: not a JSON object: " . _clip($line) . "\n"
		  unless ref $ev eq 'HASH';

		foreach my $k (qw(seq lsn committed_at prev_hash hash))
		{
			die "StreamCheck: $where: key \"$k\" missing: " . _clip($line) . "\n"
			  unless exists $ev->{$k};
		}

		my $seq = $ev->{seq};
		die "StreamCheck: $where: seq is $seq, expected $want_seq"
		  . ($seq < $want_seq ? ' (repeat or out of order)' : ' (gap)') . "\n"
		  unless defined $seq && $seq =~ /\A[0-9]+\z/ && $seq == $want_seq;

		die "StreamCheck: $where (seq $seq): prev_hash is $ev->{prev_hash}, "
		  . "expected the predecessor's hash $prev\n"
		  unless $ev->{prev_hash} eq $prev;

		# The text form: ...,"prev_hash":"<64 hex>","hash":"<64 hex>"} and
		# nothing after it.
		die "StreamCheck: $where (seq $seq): line does not end with "
		  . "the ,\"prev_hash\":...,\"hash\":... keys: " . _clip($line) . "\n"
		  unless $line =~ /,"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}\z/
		  && $1 eq $ev->{prev_hash}
		  && $2 eq $ev->{hash};

		my $want_hash = chain_hash($prev, $line);
		die "StreamCheck: $where (seq $seq): hash is $ev->{hash}, "
		  . "recomputed $want_hash\n"
		  unless $ev->{hash} eq $want_hash;

		push @$out, $ev;
		$prev = $ev->{hash};
		$want_seq++;
	}
	return @$out;
}

sub _clip
{
	my ($s) = @_;
	return length($s) > 200 ? substr($s, 0, 200) . '...' : $s;
}

sub validate_lines
{
	my ($lines, $label) = @_;
	$label //= 'lines';
	my $n = 0;
	return _validate([ map { [ "$label line " . ++$n, $_ ] } @$lines ]);
}

sub _dir_of
{
	my ($x) = @_;
	return ref($x) ? stream_dir($x) : $x;
}

# [label, raw line] for every line of every *.jsonl file of $dir.
sub _read_items
{
	my ($dir) = @_;
	my @items;
	foreach my $f (stream_files($dir))
	{
		open(my $fh, '<:raw', $f) or die "StreamCheck: cannot open $f: $!\n";
		(my $base = $f) =~ s{.*/}{};
		my $n = 0;
		while (my $raw = <$fh>)
		{
			$n++;
			push @items, [ "$base line $n", $raw ];
		}
		close($fh);
	}
	return \@items;
}

sub read_stream
{
	my ($x) = @_;
	return _validate(_read_items(_dir_of($x)));
}

sub check_stream
{
	my ($x) = @_;
	my @events;
	eval { _validate(_read_items(_dir_of($x)), \@events); };
	if ($@)
	{
		my $err = $@;
		chomp $err;
		return (\@events, $err);
	}
	return (\@events, undef);
}

sub stream_ok
{
	my ($x, $name) = @_;
	my ($events, $err) = check_stream($x);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	Test::More::ok(!defined $err, $name // 'stream valid')
	  or Test::More::diag($err);
	return $events;
}

1;

# Copyright: activity_audit contributors
#
# 039_meta.pl: META.json, the distribution's metadata for PGXN, is valid
# under PGXN's meta spec 1.0.0 and agrees with the extension it describes.
#
#  (a) It parses, has every key the spec requires, and each has the type
#      and form the spec gives (semantic versions, a known license string,
#      a release status, the meta-spec version).
#  (b) It agrees with the tree: the extension's name and default_version
#      (activity_audit.control) are the ones it provides and releases, the
#      files it names exist and are installed (Makefile DATA), and the
#      PostgreSQL it requires is not newer than the one under test.
#
# No server is needed; PGXN's own validator (PGXN::Meta::Validator) is not
# packaged in Debian, so the rules of the spec that matter are checked here.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

# slurp FILE: the whole file, or a failed test and undef.
sub slurp
{
	my ($file) = @_;
	open(my $fh, '<', $file) or return undef;
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

# semver: PGXN requires versions in semantic version 1.0.0 form.
my $semver = qr/^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+)?$/;

# The license strings meta spec 1.0.0 defines.
my %licenses = map { $_ => 1 } qw(
  agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
  gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
  openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source restricted
  unrestricted unknown);

my $text = slurp('META.json');
ok(defined $text, 'META.json is there');
my $meta = eval { JSON::PP->new->relaxed(0)->decode($text) };
is($@, '', 'META.json is valid JSON');
is(ref $meta, 'HASH', 'META.json is an object');

# (a) the spec's required keys and their forms
for my $key (qw(name abstract maintainer license provides meta-spec version))
{
	ok(exists $meta->{$key}, "required key \"$key\" is present");
}
like($meta->{name}, qr/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'name has no characters PGXN refuses');
ok(length($meta->{abstract} // '') > 0, 'abstract is not empty');
like($meta->{version} // '', $semver, 'version is a semantic version');
my @maintainers = ref $meta->{maintainer} eq 'ARRAY' ? @{ $meta->{maintainer} } : ($meta->{maintainer});
ok(@maintainers > 0 && !grep({ !defined $_ || $_ eq '' } @maintainers), 'maintainer is named');
my @lic = ref $meta->{license} eq 'ARRAY' ? @{ $meta->{license} } :
  ref $meta->{license} eq 'HASH' ? () : ($meta->{license});
ok(ref $meta->{license} eq 'HASH' || (@lic && !grep { !$licenses{$_} } @lic),
	'license is one of the spec\'s license strings (or a map of names to URLs)');
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version is 1.0.0');
like($meta->{release_status} // 'stable', qr/^(stable|testing|unstable)$/, 'release_status is one the spec knows');
is(ref $meta->{provides}, 'HASH', 'provides is an object');
for my $ext (sort keys %{ $meta->{provides} })
{
	my $p = $meta->{provides}{$ext};
	ok(defined $p->{file} && -f $p->{file}, "provides.$ext.file exists");
	like($p->{version} // '', $semver, "provides.$ext.version is a semantic version");
	ok(!defined $p->{docfile} || -f $p->{docfile}, "provides.$ext.docfile exists");
}
for my $phase (keys %{ $meta->{prereqs} // {} })
{
	for my $rel (keys %{ $meta->{prereqs}{$phase} })
	{
		like($rel, qr/^(requires|recommends|suggests|conflicts)$/, "prereqs.$phase.$rel is a relationship the spec knows");
	}
}

# (b) agreement with the tree
my $control = slurp('activity_audit.control') // '';
my ($default_version) = $control =~ /^\s*default_version\s*=\s*'([^']+)'/m;
ok(defined $default_version, 'activity_audit.control has a default_version');
my $release = $default_version;
$release .= '.0' while ($release =~ tr/.//) < 2;
ok(exists $meta->{provides}{activity_audit}, 'META.json provides the extension activity_audit');
is($meta->{name}, 'activity_audit', 'the distribution is named after the extension');
is($meta->{provides}{activity_audit}{version}, $release,
	"the extension's version is the control file's default_version ($default_version)");
is($meta->{version}, $release, 'the release is that version');

my $makefile = slurp('Makefile') // '';
$makefile =~ s/\\\n/ /g;    # continuation lines
my ($data) = $makefile =~ /^DATA\s*=\s*(.*)$/m;
my %installed = map { $_ => 1 } split(' ', $data // '');
ok($installed{ $meta->{provides}{activity_audit}{file} // '' },
	'the file it names is installed by make install (Makefile DATA)');
ok(grep({ m{^sql/activity_audit--(?:[0-9.]+--)?\Q$default_version\E\.sql$} } keys %installed),
	"make install installs a script that reaches $default_version");

my $pg_version = `pg_config --version`;
my ($pg_major) = ($pg_version // '') =~ /PostgreSQL ([0-9]+)/;
my $required = $meta->{prereqs}{runtime}{requires}{PostgreSQL} // '';
like($required, $semver, 'the PostgreSQL it requires is a semantic version');
my ($req_major) = $required =~ /^([0-9]+)/;
ok(defined $pg_major && defined $req_major && $req_major <= $pg_major,
	"the PostgreSQL it requires ($required) is not newer than the one under test (" . ($pg_major // '?') . ')');

done_testing();

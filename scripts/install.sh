#!/bin/sh
# Installs the replicant binary for this machine from a release:
#
#   curl -fsSL https://github.com/replicant-cdc/replicant/releases/latest/download/install.sh | sh
#   sh install.sh [--prefix DIR] [--version VERSION]
#
# Detects OS and architecture, downloads SHA256SUMS and the matching
# replicant-<version>-<os>-<arch> archive, verifies the archive's checksum (and refuses to
# install anything when it does not match), then installs the binary to PREFIX/bin (default
# ~/.local/bin) and the conf/ samples, docs/, examples/, README.md and LICENSE to
# PREFIX/share/replicant.
#
# Environment:
#   REPLICANT_INSTALL_BASE_URL  folder holding SHA256SUMS and the archives (any curl URL,
#                               file:// too); default the project's GitHub releases
#   REPLICANT_REPO              GitHub owner/name for the default URL
#   REPLICANT_VERSION           version to install (default the newest)
#   REPLICANT_PREFIX            install prefix (default ~/.local)
set -eu

repo=${REPLICANT_REPO:-replicant-cdc/replicant}
version=${REPLICANT_VERSION:-}
prefix=${REPLICANT_PREFIX:-}
base=${REPLICANT_INSTALL_BASE_URL:-}

say() { echo "install: $*"; }
die() {
  echo "install: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --version) [ $# -ge 2 ] || die "--version needs a version"; version=$2; shift 2 ;;
    --version=*) version=${1#--version=}; shift ;;
    --base-url) [ $# -ge 2 ] || die "--base-url needs a URL"; base=$2; shift 2 ;;
    --base-url=*) base=${1#--base-url=}; shift ;;
    -h | --help)
      sed -n '2,18s/^# \{0,1\}//p' "$0" 2>/dev/null || true
      exit 0
      ;;
    *) die "unknown argument '$1' (usage: install.sh [--prefix DIR] [--version VERSION])" ;;
  esac
done
version=${version#v}
[ -n "$prefix" ] || prefix="${HOME:?HOME is not set; give --prefix}/.local"
if [ -z "$base" ]; then
  if [ -n "$version" ]; then
    base="https://github.com/$repo/releases/download/v$version"
  else
    base="https://github.com/$repo/releases/latest/download"
  fi
fi
base=${base%/}

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=macos ;;
  MINGW* | MSYS* | CYGWIN*) os=windows ;;
  *) die "no release for this operating system ($(uname -s)); build from source (README)" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no release for this architecture ($(uname -m)); build from source (README)" ;;
esac
if [ "$os" = windows ]; then ext=zip exe=replicant.exe; else ext=tar.gz exe=replicant; fi

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  die "needs curl or wget"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "needs sha256sum or shasum to verify the download"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t replicant-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say "reading $base/SHA256SUMS"
fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $base/SHA256SUMS"
# Lines are "<sha256>  <archive>"; pick this platform's archive (the newest version if the
# list holds several and none was asked for).
suffix="-$os-$arch.$ext"
if [ -n "$version" ]; then
  archive="replicant-$version$suffix"
  grep -q "[ *]$archive\$" "$tmp/SHA256SUMS" ||
    die "no $archive in $base/SHA256SUMS"
else
  archive=$(awk '{ sub(/^\*/, "", $2); print $2 }' "$tmp/SHA256SUMS" |
    grep "^replicant-.*$suffix\$" | sort -t- -k2,2V | tail -n 1 || true)
  [ -n "$archive" ] || die "no archive for $os-$arch in $base/SHA256SUMS"
fi
want=$(awk -v f="$archive" '{ n = $2; sub(/^\*/, "", n); if (n == f) { print $1; exit } }' \
  "$tmp/SHA256SUMS")
name=${archive%."$ext"}

say "downloading $archive"
fetch "$base/$archive" "$tmp/$archive" || die "cannot download $base/$archive"
got=$(sha256 "$tmp/$archive")
if [ "$got" != "$want" ]; then
  die "checksum mismatch for $archive: expected $want, got $got; nothing installed"
fi
say "checksum ok ($got)"

mkdir "$tmp/x"
if [ "$ext" = zip ]; then
  command -v unzip >/dev/null 2>&1 || die "needs unzip"
  unzip -q "$tmp/$archive" -d "$tmp/x" || die "cannot unpack $archive"
else
  tar -xzf "$tmp/$archive" -C "$tmp/x" || die "cannot unpack $archive"
fi
src="$tmp/x/$name"
[ -f "$src/$exe" ] || die "$archive has no $name/$exe"

bindir="$prefix/bin"
share="$prefix/share/replicant"
mkdir -p "$bindir" "$share" || die "cannot create $bindir"
# Copy beside the target, then rename: a running replicant keeps its old file.
cp "$src/$exe" "$bindir/.$exe.new"
chmod 755 "$bindir/.$exe.new"
mv -f "$bindir/.$exe.new" "$bindir/$exe"
rm -rf "$share/conf" "$share/docs" "$share/examples"
cp -R "$src/conf" "$share/conf"
if [ -d "$src/docs" ]; then cp -R "$src/docs" "$share/docs"; fi
if [ -d "$src/examples" ]; then cp -R "$src/examples" "$share/examples"; fi
cp "$src/README.md" "$src/LICENSE" "$share/"

say "installed $bindir/$exe ($("$bindir/$exe" --version 2>/dev/null || echo "cannot run it here"))"
say "sample configuration in $share/conf"
case ":${PATH:-}:" in
  *":$bindir:"*) ;;
  *) say "add $bindir to your PATH, e.g.: export PATH=\"$bindir:\$PATH\"" ;;
esac

#!/usr/bin/env bash
# Builds the certfront packages from the release build:
#   target/packages/certfront_<version>_amd64.deb       (cargo-deb)
#   target/packages/certfront-<version>-1.x86_64.rpm    (cargo-generate-rpm)
# Both hold the same files: /usr/bin/certfront, the systemd unit, the sysusers and
# tmpfiles entries, /etc/certfront/certfront.toml (a configuration file: upgrades keep the
# admin's edits) and the docs and alert rules under /usr/share/doc/certfront/.
# cargo-deb and cargo-generate-rpm are installed with `cargo install --locked` when
# missing. Needs what a release build needs (Rust 1.88+, a C compiler) plus binutils
# (strip) and dpkg-dev's dpkg-shlibdeps for the .deb's library dependencies; run it
# from anywhere, as any user. Usage: packaging/build.sh [--deb-only]
set -euo pipefail

cd "$(dirname "$0")/.."
# The package metadata (proxy/Cargo.toml) names files under the workspace's target/.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR CARGO_BUILD_TARGET
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

deb_only=false
case "${1:-}" in
    "") ;;
    --deb-only) deb_only=true ;;
    *) echo "usage: packaging/build.sh [--deb-only]" >&2; exit 2 ;;
esac

# Pinned so that a package build is repeatable; raise them deliberately.
need_tool() { # subcommand crate version
    if ! cargo "$1" --version >/dev/null 2>&1; then
        echo "cargo $1 not found: cargo install --locked $2@$3" >&2
        cargo install --locked "$2@$3"
    fi
}
need_tool deb cargo-deb 3.8.0
$deb_only || need_tool generate-rpm cargo-generate-rpm 0.21.1

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "error: no version in Cargo.toml [workspace.package]" >&2; exit 1; }

echo "== cargo build --release -p certfront ($version)"
cargo build --release --locked -p certfront

# The files both packages take from target/package-files/ (cargo-deb finds the unit,
# certfront.sysusers and certfront.tmpfile there by name and writes the maintainer
# script steps for them).
stage=target/package-files
rm -rf "$stage"
mkdir -p "$stage" target/packages
# deploy/systemd's unit runs /usr/local/bin/certfront (a build installed by hand); the
# package's binary is /usr/bin/certfront, and the install comment above [Unit] is
# replaced by one that fits the package.
{
    echo "# certfront as a systemd service, installed by the certfront package. Installing"
    echo "# does not enable or start it: certfront check -c /etc/certfront/certfront.toml,"
    echo "# then systemctl enable --now certfront (docs: /usr/share/doc/certfront/operations.md)."
    sed -n '/^\[Unit\]/,$p' deploy/systemd/certfront.service |
        sed 's|/usr/local/bin/certfront|/usr/bin/certfront|g'
} >"$stage/certfront.service"
grep -qx 'ExecStart=/usr/bin/certfront run -c /etc/certfront/certfront.toml' "$stage/certfront.service" || {
    echo "error: deploy/systemd/certfront.service: ExecStart not rewritten to /usr/bin/certfront" >&2
    exit 1
}
cp deploy/systemd/certfront.sysusers "$stage/certfront.sysusers"
cp deploy/systemd/certfront.tmpfiles "$stage/certfront.tmpfile"
strip --strip-all -o "$stage/certfront" target/release/certfront
gzip -9 -n -c packaging/certfront.1 >"$stage/certfront.1.gz"

echo "== cargo deb"
rm -f target/packages/certfront_*.deb target/packages/certfront-*.rpm
cargo deb -p certfront --no-build --strip --output "target/packages/certfront_${version}_amd64.deb"
deb="target/packages/certfront_${version}_amd64.deb"
[ -f "$deb" ] || { echo "error: cargo deb did not write $deb" >&2; exit 1; }

if ! $deb_only; then
    echo "== cargo generate-rpm"
    cargo generate-rpm -p proxy --output "target/packages/certfront-${version}-1.x86_64.rpm"
    [ -f "target/packages/certfront-${version}-1.x86_64.rpm" ] || {
        echo "error: cargo generate-rpm did not write target/packages/certfront-${version}-1.x86_64.rpm" >&2
        exit 1
    }
fi
ls -l target/packages/

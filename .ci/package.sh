#!/usr/bin/env bash
# Builds the packages (packaging/build.sh) and tries the .deb the way an administrator
# would, on this machine: lintian, dpkg -i, the installed `certfront check` on the installed
# example config (as the certfront user), systemd-analyze verify on the installed unit, an
# edit of /etc/certfront/certfront.toml that survives a reinstall and an upgrade, then
# dpkg -r (the edited config stays) and dpkg --purge (it goes). Also checks that the .rpm
# (rpm -qlp) holds the same files as the .deb. Installs lintian and rpm when missing.
# Needs root (or sudo -n) on a Debian-family machine; elsewhere it says so and fails.
# Leaves the machine as it found it, so running it again works; it refuses to touch a
# certfront package installed by someone else (its configuration is not the example's).
set -euo pipefail

cd "$(dirname "$0")/.."

# shellcheck source=.ci/lib.sh
. .ci/lib.sh
command -v dpkg >/dev/null 2>&1 || { echo "error: dpkg not found: the .deb is tried on Debian-family machines" >&2; exit 1; }

need_package lintian lintian
need_package rpm rpm

conf=/etc/certfront/certfront.toml
marker="# edited by .ci/package.sh"
fail() { echo "error: $*" >&2; exit 1; }
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' certfront 2>/dev/null || true; }

# A certfront package left by an earlier, interrupted run is purged; one installed by
# someone else (its configuration is neither the example nor edited by this script) is not.
status=$(pkg_status)
if [ -n "$status" ] && [ "$status" != "un " ]; then
    if [ -f "$conf" ] && ! grep -qF "$marker" "$conf" && ! cmp -s "$conf" packaging/certfront.toml; then
        fail "certfront is installed here (dpkg status '$status') with its own $conf: not touching it (run this on a CI machine, or purge it first)"
    fi
    echo "purging the certfront package left by an earlier run"
    as_root dpkg --purge certfront >/dev/null
    as_root rm -rf /var/lib/certfront
fi

echo "== packaging/build.sh"
bash packaging/build.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb="target/packages/certfront_${version}_amd64.deb"
rpm_file="target/packages/certfront-${version}-1.x86_64.rpm"

echo "== dpkg -c $deb"
dpkg-deb -c "$deb"

echo "== lintian (errors and warnings fail; packaging/README.md explains the info tags)"
lintian --version
lintian --fail-on error,warning --display-info "$deb"

echo "== rpm -qlp $rpm_file: the same files as the .deb"
rpm -qlp "$rpm_file"
deb_files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' |
    grep -v -e '^/usr/share/doc/certfront/copyright$' -e '^/usr/share/doc/certfront/changelog.gz$' \
        -e '^/usr/share/lintian/overrides/certfront$' | sort)
rpm_files=$(rpm -qlp "$rpm_file" | sort)
if [ "$deb_files" != "$rpm_files" ]; then
    diff <(echo "$deb_files") <(echo "$rpm_files") || true
    fail "the .deb (<) and the .rpm (>) hold different files (the .deb's copyright, changelog and lintian overrides aside)"
fi
[ "$(rpm -qp --configfiles "$rpm_file")" = "$conf" ] || fail "the .rpm's configuration files are not exactly $conf"
rpm -qp --scripts "$rpm_file" | grep -q 'systemd-sysusers certfront.conf' ||
    fail "the .rpm's %post does not create the certfront user"

echo "== dpkg -i $deb"
as_root dpkg -i "$deb"
[ "$(pkg_status)" = "ii " ] || fail "certfront is not installed after dpkg -i (status '$(pkg_status)')"
/usr/bin/certfront --version
grep -qx "$conf" /var/lib/dpkg/info/certfront.conffiles || fail "$conf is not a conffile"
id certfront >/dev/null || fail "the package did not create the certfront user"
[ "$(stat -c '%a %U:%G' /etc/certfront)" = "750 root:certfront" ] ||
    fail "/etc/certfront is $(stat -c '%a %U:%G' /etc/certfront), expected 750 root:certfront"
[ "$(stat -c '%a %U:%G' /var/lib/certfront)" = "700 certfront:certfront" ] ||
    fail "/var/lib/certfront is $(stat -c '%a %U:%G' /var/lib/certfront), expected 700 certfront:certfront"
# Installing neither enables nor starts the service.
enabled=$(systemctl --root=/ is-enabled certfront.service 2>&1 || true)
[ "$enabled" = "disabled" ] || fail "certfront.service is '$enabled' after install, expected disabled"
if [ -d /run/systemd/system ]; then
    active=$(systemctl is-active certfront.service || true)
    [ "$active" = "inactive" ] || fail "certfront.service is '$active' after install, expected inactive"
fi

echo "== certfront check on the installed example config, as the certfront user"
as_root runuser -u certfront -- /usr/bin/certfront check -c "$conf"
[ -f /var/lib/certfront/ca.pem ] || fail "check did not create the internal CA in /var/lib/certfront"

echo "== systemd-analyze verify /usr/lib/systemd/system/certfront.service"
if ! out=$(systemd-analyze verify /usr/lib/systemd/system/certfront.service 2>&1) || [ -n "$out" ]; then
    echo "$out"
    fail "the installed unit does not verify"
fi
grep -qx 'ExecStart=/usr/bin/certfront run -c /etc/certfront/certfront.toml' \
    /usr/lib/systemd/system/certfront.service || fail "the installed unit does not run /usr/bin/certfront"

echo "== an edit of $conf survives a reinstall and an upgrade"
edit="$marker $(date -u +%FT%TZ)"
printf '\n%s\n' "$edit" | as_root tee -a "$conf" >/dev/null
as_root dpkg -i "$deb"
grep -qxF "$edit" "$conf" || fail "reinstalling the package lost the edit of $conf"
# The same files as a newer version: an upgrade (postinst configure <old version>).
upgrade=$(mktemp -d)
trap 'rm -rf "$upgrade"' EXIT
cargo deb -p certfront --no-build --strip --deb-version "${version}+ci1" --output "$upgrade/" >/dev/null
as_root dpkg -i "$upgrade"/certfront_*.deb
[ "$(dpkg-query -W -f='${Version}' certfront)" = "${version}+ci1" ] || fail "the upgrade was not installed"
grep -qxF "$edit" "$conf" || fail "upgrading the package lost the edit of $conf"
as_root runuser -u certfront -- /usr/bin/certfront check -c "$conf" >/dev/null || fail "check fails after the upgrade"

echo "== dpkg -r keeps the edited config; dpkg --purge removes it"
as_root dpkg -r certfront
[ ! -e /usr/bin/certfront ] || fail "dpkg -r left /usr/bin/certfront"
[ "$(pkg_status)" = "rc " ] || fail "after dpkg -r the status is '$(pkg_status)', expected rc (config files kept)"
grep -qxF "$edit" "$conf" || fail "dpkg -r did not keep the edited $conf"
as_root dpkg --purge certfront
[ ! -e "$conf" ] || fail "dpkg --purge left $conf"
# The internal CA in /var/lib/certfront is kept by a purge (docs/operations.md); this one
# was made by the check above.
as_root rm -rf /var/lib/certfront
echo "package checks passed"

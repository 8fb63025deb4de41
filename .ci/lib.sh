# shellcheck shell=bash
# .ci/lib.sh: what the CI scripts share; sourced, not run.

# as_root CMD...: runs CMD as root: directly when this is root, else with `sudo -n`;
# fails with a message when neither can be.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "error: '$*' needs root, and this is neither root nor has sudo" >&2
        return 1
    fi
}

# need_package PACKAGE COMMAND...: unless every COMMAND is on PATH already, installs the
# Debian package PACKAGE (no recommends, no TTY), then checks that each COMMAND now is.
# Running it again is a no-op.
need_package() {
    local package=$1 cmd
    shift
    local missing=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "${missing[*]} not found: installing Debian package $package" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || {
            echo "error: package $package installed but $cmd is not on PATH" >&2
            return 1
        }
    done
}

#!/usr/bin/env bash
# Handshake cost of client-certificate CRLs: a client CA made with openssl, CRLs from it
# with 1 and ENTRIES (default 100,000) revoked serials (`openssl ca -gencrl`), and full
# TLS 1.3 handshakes with a client certificate that is not revoked, against the same
# host without a CRL. Prints, per case: start-to-ready time, certfront's CPU per handshake
# (utime+stime from /proc before and after the run) and RSS.
#
#   cargo build --release -p certfront -p certfront-loadtest
#   loadtest/crl-handshakes.sh [BIN_DIR] [SECONDS]     # BIN_DIR defaults to target/release
#
# Loopback only; each run is bounded by SECONDS (default 10).
set -euo pipefail
bin=$(cd "${1:-target/release}" && pwd)
secs=${2:-10}
entries=${ENTRIES:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem \
    -out clients-ca.pem -subj "/CN=Example Issuing CA" -days 365 \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client-key.pem \
    -out client.csr -subj "/CN=TAB-0042" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > client.ext
openssl x509 -req -in client.csr -CA clients-ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days 90 -extfile client.ext -out client.pem 2>/dev/null

crl() { # NAME ENTRIES: a CRL from the client CA revoking ENTRIES made-up serials
    mkdir -p "ca-$1"
    echo 1000 > "ca-$1/crlnumber"
    awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++)
        printf "R\t271231235959Z\t261201000000Z\t%08X\tunknown\t/CN=device-%d\n", 268435456 + i, i }' \
        > "ca-$1/index.txt"
    cat > "ca-$1/o.cnf" <<CNF
[ca]
default_ca = c
[c]
dir = $work/ca-$1
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
certificate = $work/clients-ca.pem
private_key = $work/ca-key.pem
default_md = sha256
default_crl_days = 7
unique_subject = no
CNF
    openssl ca -config "ca-$1/o.cnf" -gencrl 2>/dev/null | openssl crl -outform DER -out "$1.crl"
}
crl one 1
crl many "$entries"

config() { # NAME [CRL]
    cat > "$1.toml" <<TOML
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
state_dir = "state"
[tls]
resumption = false
[[host]]
fqdn = "portal.localhost"
internal = true
respond = { status = 200, body = "ok" }
[host.client_auth]
ca = "clients-ca.pem"
${2:+crl = [\"$2\"]}
TOML
}
config none
config one one.crl
config many many.crl

tick=$(getconf CLK_TCK)
run() { # NAME
    local t0 t1 pid addr c0 c1 n
    t0=$(date +%s%N)
    "$bin/certfront" run -c "$1.toml" 2> "$1.log" &
    pid=$!
    for _ in $(seq 500); do grep -q "ready, pid" "$1.log" && break; sleep 0.02; done
    t1=$(date +%s%N)
    addr=$(grep -o "listening for TLS on [0-9.:]*" "$1.log" | head -1 | awk '{print $5}')
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    n=$("$bin/certfront-loadtest" handshakes --addr "$addr" --sni portal.localhost \
        --ca state/ca.pem --client-cert client.pem --client-key client-key.pem \
        --connections 8 --duration "$secs" --threads 1 | awk '/^  handshakes /{print $2}')
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    printf '%-5s start to ready %5d ms  handshakes %7d  server CPU %5d us/handshake  RSS %6d KB\n' \
        "$1" $(( (t1 - t0) / 1000000 )) "$n" $(( (c1 - c0) * 1000000 / tick / n )) \
        "$(ps -o rss= -p "$pid")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
echo "CRL entries: none, 1, $entries"
for round in 1 2; do
    for name in none one many; do run "$name"; done
done

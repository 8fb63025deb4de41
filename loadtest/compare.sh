#!/usr/bin/env bash
# compare.sh: certfront against nginx and HAProxy on this machine, same work, same certificate, same backend.
#
# For each proxy it measures the CPU time the proxy's process tree spent
# (utime+stime from /proc, via `certfront-loadtest proc`) around each run, and
# divides by the work done. That ratio survives the load generator sharing the
# cores with the proxy; requests/s and p99 are printed too but depend on it.
#
# Usage:  loadtest/compare.sh            (from anywhere; ~8 minutes, 3.5 of them the 1,000 rotations)
# Env:    DURATION=10   seconds per run
#         IDLE_CONNECTIONS=5000
#         BULK_BYTES=100000000
#         ROTATIONS=1000   certificate rotations under load (certfront only; 0 skips)
#         HOSTS=10000      hosts sharing one wildcard certificate (certfront, nginx; 0 skips)
#         CHART=loadtest/chart.svg   where the SVG chart of the request runs goes ("" skips)
#         RESULTS=FILE  also copy the JSON lines of every run there
#         CF_PORT=18443 NGINX_PORT=18444 HAPROXY_PORT=18445   (loopback ports used)
#         KEEP=1        keep the work directory (configs, logs) for inspection
#         BIN_DIR=DIR   use the certfront and certfront-loadtest binaries in DIR, no build
# nginx and HAProxy are used when installed (Debian: apt-get install nginx-light haproxy);
# otherwise their column says "skipped: not installed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
BULK_BYTES=${BULK_BYTES:-100000000}
CF_PORT=${CF_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
HAPROXY_PORT=${HAPROXY_PORT:-18445}
ROTATIONS=${ROTATIONS:-1000}
HOSTS=${HOSTS:-10000}
CHART=${CHART-$ROOT/loadtest/chart.svg}
NAME=bench.localhost
RSA_NAME=rsa.bench.localhost      # the same proxies serve an RSA-2048 leaf for this name
ROTATE_NAME=rotate.bench.localhost  # certfront's host whose files `rotate` replaces
WORK=$(mktemp -d /tmp/certfront-compare.XXXXXX)
PIDS=()

cleanup() {
    # Only the processes this script started, by their pid.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }

# --- build ---------------------------------------------------------------
if [[ -z "${BIN_DIR:-}" ]]; then
    say "building release binaries (cargo build --release -p certfront -p certfront-loadtest)"
    (cd "$ROOT" && cargo build --release -q -p certfront -p certfront-loadtest)
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
LT=$BIN_DIR/certfront-loadtest
CF=$BIN_DIR/certfront

# --- certificates: ECDSA P-256 and RSA-2048 leaves, signed by a throw-away root ----------
say "certificates in $WORK"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca-key.pem" -subj "/CN=certfront compare root" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$WORK/ca.pem" 2>/dev/null
# leaf NAME ec|rsa CERT KEY: a leaf that meets certfront's default policy.
leaf() {
    local name=$1 kind=$2 cert=$3 key=$4 usage=digitalSignature
    if [[ $kind == rsa ]]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
        usage=digitalSignature,keyEncipherment
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
    fi
    chmod 600 "$key"
    openssl req -new -key "$key" -subj "/CN=$name" -out "$cert.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
        "$usage" "$name" > "$cert.ext"
    openssl x509 -req -in "$cert.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca-key.pem" \
        -CAcreateserial -days 2 -sha256 -extfile "$cert.ext" -out "$cert" 2>/dev/null
    rm -f "$cert.csr" "$cert.ext"
}
leaf "$NAME" ec "$WORK/leaf.pem" "$WORK/leaf-key.pem"
leaf "$RSA_NAME" rsa "$WORK/leaf-rsa.pem" "$WORK/leaf-rsa-key.pem"
mkdir -p "$WORK/rotate"
leaf "$ROTATE_NAME" ec "$WORK/rotate/tls.crt" "$WORK/rotate/tls.key"
chmod 600 "$WORK"/*key*.pem
cat "$WORK/leaf.pem" "$WORK/leaf-key.pem" > "$WORK/haproxy.pem"
cat "$WORK/leaf-rsa.pem" "$WORK/leaf-rsa-key.pem" > "$WORK/haproxy-rsa.pem"

# --- backend ---------------------------------------------------------------
"$LT" backend --listen 127.0.0.1:0 --max-seconds 1800 > "$WORK/backend.addr" &
PIDS+=($!)
for _ in $(seq 50); do [[ -s "$WORK/backend.addr" ]] && break; sleep 0.1; done
BACKEND=$(head -1 "$WORK/backend.addr")
[[ -n "$BACKEND" ]] || { echo "error: the backend did not print its address" >&2; exit 1; }
say "backend on $BACKEND"

# --- proxies -----------------------------------------------------------------
declare -A PORT PID VERSION
PROXIES=()

cat > "$WORK/certfront.toml" <<EOF
[server]
listen = ["127.0.0.1:$CF_PORT"]
access_log = false
rescan_seconds = 0
[tls]
trust = ["$WORK/ca.pem"]
resumption = false
[limits]
max_connections = 20000
max_connections_per_ip = 20000
upstream_max_idle_connections = 512
[[host]]
fqdn = "$NAME"
cert = "$WORK/leaf.pem"
key = "$WORK/leaf-key.pem"
upstream = "http://$BACKEND"
[[host]]
fqdn = "$RSA_NAME"
cert = "$WORK/leaf-rsa.pem"
key = "$WORK/leaf-rsa-key.pem"
upstream = "http://$BACKEND"
[[host]]
fqdn = "$ROTATE_NAME"
cert = "$WORK/rotate/tls.crt"
key = "$WORK/rotate/tls.key"
upstream = "http://$BACKEND"
EOF
# certfront serves on one thread per core (2 here), as the peers are set up to.
RUST_LOG=warn "$CF" run -c "$WORK/certfront.toml" 2> "$WORK/certfront.log" &
PID[certfront]=$!; PIDS+=($!); PORT[certfront]=$CF_PORT
VERSION[certfront]="certfront $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
PROXIES+=(certfront)

if command -v nginx > /dev/null; then
    mkdir -p "$WORK/nginx"
    cat > "$WORK/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream backend { server $BACKEND; keepalive 512; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        server_name $NAME;
        ssl_certificate $WORK/leaf.pem;
        ssl_certificate_key $WORK/leaf-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        keepalive_requests 100000000;
        client_max_body_size 0;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
        }
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        server_name $RSA_NAME;
        ssl_certificate $WORK/leaf-rsa.pem;
        ssl_certificate_key $WORK/leaf-rsa-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
    nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx-error.log" &
    PID[nginx]=$!; PIDS+=($!); PORT[nginx]=$NGINX_PORT
    VERSION[nginx]=$(nginx -v 2>&1 | sed 's/.*version: //')
    PROXIES+=(nginx)
else
    say "nginx: skipped: not installed"
fi

if command -v haproxy > /dev/null; then
    cat > "$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 9000     # 2 fds each must fit the usual 20000 open-files limit
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 120s
    timeout http-keep-alive 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $WORK/haproxy.pem crt $WORK/haproxy-rsa.pem alpn h2,http/1.1 no-tls-tickets
    default_backend be
backend be
    server s1 $BACKEND
EOF
    haproxy -db -f "$WORK/haproxy.cfg" 2> "$WORK/haproxy.log" &
    PID[haproxy]=$!; PIDS+=($!); PORT[haproxy]=$HAPROXY_PORT
    VERSION[haproxy]=$(haproxy -v | awk 'NR == 1 { print "HAProxy " $3 }')   # awk reads it all: no SIGPIPE under pipefail
    PROXIES+=(haproxy)
else
    say "haproxy: skipped: not installed"
fi

# --- helpers -----------------------------------------------------------------
# jnum KEY JSON: a number field of a one-line JSON object.
jnum() { grep -o "\"$1\":[0-9.eE+-]*" <<< "$2" | head -1 | cut -d: -f2; }
# round VALUE DIGITS (empty stays empty)
round() { [[ -z "$1" ]] || awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; }
cpu_us() { jnum cpu_us "$("$LT" proc --json --pid "$1")"; }
# target PROXY [NAME]: the loadtest's flags for that proxy (and server name).
target() { echo --addr "127.0.0.1:${PORT[$1]}" --sni "${2:-$NAME}" --ca "$WORK/ca.pem"; }
# record PROXY RUN JSON [CPU]: one line of results.json (the run's JSON with proxy, run, CPU).
record() {
    local cpu=${4:-}
    [[ -n "$cpu" && "$cpu" != n/a ]] || cpu=null
    sed "s/^{/{\"proxy\":\"$1\",\"run\":\"$2\",\"cpu_us_each\":$cpu,/" <<< "$3" >> "$WORK/results.json"
}

for p in "${PROXIES[@]}"; do
    ready=""
    for _ in $(seq 100); do
        kill -0 "${PID[$p]}" 2>/dev/null || break
        out=$("$LT" --json requests $(target "$p") --connections 1 --duration 1 --max-requests 1 2>/dev/null || true)
        [[ "$(jnum requests "$out")" == 1 ]] && { ready=1; break; }
        sleep 0.2
    done
    [[ -n "$ready" ]] || { echo "error: $p did not answer; its log is in $WORK (run with KEEP=1)" >&2; KEEP=1; exit 1; }
    say "$p ready on 127.0.0.1:${PORT[$p]} (${VERSION[$p]}, pid ${PID[$p]})"
done

declare -A R   # R[proxy,metric]
# measure PROXY NAME COUNT_KEY -- loadtest args...: runs one work, records CPU per unit and the JSON.
measure() {
    local p=$1 name=$2 key=$3; shift 4
    local before after out count
    before=$(cpu_us "${PID[$p]}")
    out=$("$LT" --json --threads 2 "$@")
    after=$(cpu_us "${PID[$p]}")
    count=$(jnum "$key" "$out")
    R[$p,$name.json]=$out
    R[$p,$name.errors]=$(jnum errors "$out")
    R[$p,$name.cpu]=$(awk -v a="$after" -v b="$before" -v n="$count" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "n/a" }')
    R[$p,$name.rate]=$(round "$(jnum "${key}_per_s" "$out")" 0)
    R[$p,$name.p99]=$(jnum p99_us "$out")
    record "$p" "$name" "$out" "${R[$p,$name.cpu]}"
    say "$p $name: $count $key, errors ${R[$p,$name.errors]:-0}, CPU ${R[$p,$name.cpu]} µs each"
}

for p in "${PROXIES[@]}"; do
    t=$(target "$p")
    "$LT" --threads 2 requests $t --h1 --connections 8 --duration 1 > /dev/null   # warm-up
    measure "$p" h1 requests -- requests $t --h1 --connections 32 --duration "$DURATION"
    measure "$p" h2 requests -- requests $t --h2 --connections 32 --streams 10 --duration "$DURATION"
    measure "$p" hs handshakes -- handshakes $t --tls 1.3 --request --connections 16 --duration "$DURATION"
    measure "$p" hsrsa handshakes -- handshakes $(target "$p" "$RSA_NAME") --tls 1.3 --request --connections 16 --duration "$DURATION"
    key=$(grep -o '"server_key":"[^"]*"' <<< "${R[$p,hsrsa.json]}" | cut -d'"' -f4)
    [[ "$key" == "RSA 2048" ]] || { say "$p served $key for $RSA_NAME, not RSA 2048: its RSA row is void"; R[$p,hsrsa.cpu]="n/a ($key)"; }
    out=$("$LT" --json throughput $t --direction down --bytes "$BULK_BYTES")
    R[$p,bulk]=$(round "$(jnum mb_per_s "$out")" 0)
    out=$("$LT" --json throughput $t --direction up --bytes "$BULK_BYTES")
    R[$p,bulkup]=$(round "$(jnum mb_per_s "$out")" 0)
    out=$("$LT" --json idle $t --connections "$IDLE_CONNECTIONS" --pid "${PID[$p]}")
    R[$p,idle]=$(round "$(jnum kb_per_connection "$out")" 1)
    record "$p" idle "$out"
    say "$p bulk down ${R[$p,bulk]} MB/s, up ${R[$p,bulkup]} MB/s, idle ${R[$p,idle]} KB/connection"
done

# --- rotation torture (certfront only: nginx and HAProxy need a reload to change a certificate) ---
if (( ROTATIONS > 0 )); then
    say "certfront rotate: $ROTATIONS rotations of $ROTATE_NAME (rename, in-place, k8s) under load"
    out=$("$LT" --json --threads 2 rotate $(target certfront "$ROTATE_NAME") --ca-key "$WORK/ca-key.pem" \
        --cert "$WORK/rotate/tls.crt" --key "$WORK/rotate/tls.key" --rotations "$ROTATIONS" \
        --timeline "$WORK/rotate-timeline.csv" --max-seconds $(( ROTATIONS * 6 + 60 ))) || say "rotate FAILED (details below)"
    [[ -n "$out" ]] && record certfront rotate "$out"
    R[certfront,rot.done]="$(jnum rotations "$out") / $ROTATIONS"
    R[certfront,rot.failed]="$(jnum failed_requests "$out") / $(jnum failed_handshakes "$out")"
    R[certfront,rot.delay]="$(round "$(jnum delay_p50_ms "$out")" 0) / $(round "$(jnum delay_p99_ms "$out")" 0) / $(round "$(jnum delay_max_ms "$out")" 0)"
    say "certfront rotate: $out"
fi

# --- many hosts: start time and memory (certfront, nginx; HAProxy has no per-host TLS configuration) ---
if (( HOSTS > 0 )); then
    hosts_run() {   # hosts_run PROXY --certfront|--nginx BINARY
        local out
        say "$1 with $HOSTS hosts: start, RSS, handshakes first vs last host"
        out=$("$LT" --json --threads 2 hosts "$2" "$3" --hosts "$HOSTS" --duration 3 --dir "$WORK/hosts-$1") || { say "$1 hosts FAILED"; return; }
        record "$1" hosts "$out"
        R[$1,hosts.start]=$(round "$(jnum start_ms "$out")" 0)
        R[$1,hosts.rss]=$(round "$(awk -v k="$(jnum rss_kb "$out")" 'BEGIN { print k / 1024 }')" 1)
        R[$1,hosts.pss]=$(round "$(awk -v k="$(jnum pss_kb "$out")" 'BEGIN { print k / 1024 }')" 1)
        R[$1,hosts.first]=$(round "$(jnum first_host_handshakes_per_s "$out")" 0)
        R[$1,hosts.last]=$(round "$(jnum last_host_handshakes_per_s "$out")" 0)
        say "$1 hosts: $out"
    }
    hosts_run certfront --certfront "$CF"
    if [[ -n "${PID[nginx]:-}" ]]; then hosts_run nginx --nginx "$(command -v nginx)"; fi
fi

# --- table -------------------------------------------------------------------
cell() { local v=${R[$1,$2]:-}; if [[ " ${PROXIES[*]} " != *" $1 "* ]]; then echo "skipped: not installed"; else echo "${v:-n/a}"; fi; }
# ratio METRIC lower|higher: certfront divided by the best peer that ran.
ratio() {
    local best="" v
    for p in nginx haproxy; do
        v=${R[$p,$1]:-}
        [[ -n "$v" && "$v" != n/a* ]] || continue
        if [[ -z "$best" ]]; then best=$v
        elif [[ $2 == lower ]]; then best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a < b) ? a : b }')
        else best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b) ? a : b }'); fi
    done
    v=${R[certfront,$1]:-}
    if [[ -z "$best" || -z "$v" || "$v" == n/a* ]]; then echo "n/a"; else
        awk -v a="$v" -v b="$best" -v h="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f%s\n", a / b, (h == "higher") ? " (higher is better)" : "" }'
    fi
}
errs() { if [[ " ${PROXIES[*]} " != *" $1 "* ]]; then echo "skipped"; else echo "${R[$1,h1.errors]:-?} / ${R[$1,h2.errors]:-?} / ${R[$1,hs.errors]:-?} / ${R[$1,hsrsa.errors]:-?}"; fi; }
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$(cell nginx "$2")" "$(cell haproxy "$2")" "$(cell certfront "$2")" "$(ratio "$2" "$3")"; }

echo
echo "certfront compare: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ${DURATION} s per run"
echo "versions: ${VERSION[certfront]}$([[ -n "${VERSION[nginx]:-}" ]] && echo ", ${VERSION[nginx]}")$([[ -n "${VERSION[haproxy]:-}" ]] && echo ", ${VERSION[haproxy]}")"
echo
echo "| work | nginx | haproxy | certfront | certfront / best peer |"
echo "|---|---|---|---|---|"
row "HTTP/1.1 keep-alive request, CPU µs (32 conns)" h1.cpu lower
row "HTTP/2 request, CPU µs (32 conns × 10 streams)" h2.cpu lower
row "full TLS 1.3 handshake + request, CPU µs (ECDSA P-256)" hs.cpu lower
row "full TLS 1.3 handshake + request, CPU µs (RSA-2048)" hsrsa.cpu lower
row "HTTP/1.1 requests/s" h1.rate higher
row "HTTP/1.1 p99 µs" h1.p99 lower
row "HTTP/2 requests/s" h2.rate higher
row "HTTP/2 p99 µs" h2.p99 lower
row "handshakes + request /s (ECDSA P-256)" hs.rate higher
row "handshakes + request /s (RSA-2048)" hsrsa.rate higher
row "bulk download, MB/s" bulk higher
row "bulk upload, MB/s" bulkup higher
row "idle TLS connection, KB" idle lower
printf '| errors (h1 / h2 / handshakes ECDSA / RSA) | %s | %s | %s | must be 0 |\n' "$(errs nginx)" "$(errs haproxy)" "$(errs certfront)"
if (( ROTATIONS > 0 )); then
    peer="n/a: a new certificate needs a reload"
    printf '| rotations under load served (rename, in-place, k8s) | %s | %s | %s | |\n' "$peer" "$peer" "${R[certfront,rot.done]:-failed}"
    printf '| rotations: failed requests / failed handshakes | n/a | n/a | %s | must be 0 |\n' "${R[certfront,rot.failed]:-?}"
    printf '| rotation: file written → new certificate served, ms p50 / p99 / max | n/a | n/a | %s | |\n' "${R[certfront,rot.delay]:-?}"
fi
if (( HOSTS > 0 )); then
    R[haproxy,hosts.start]="n/a: no per-host TLS configuration"
    row "$HOSTS hosts (one wildcard certificate): start until the last host's handshake, ms" hosts.start lower
    row "$HOSTS hosts: RSS after start, MB (summed over processes)" hosts.rss lower
    row "$HOSTS hosts: PSS after start, MB (shared pages counted once)" hosts.pss lower
    row "$HOSTS hosts: handshakes/s, first host" hosts.first higher
    row "$HOSTS hosts: handshakes/s, last host" hosts.last higher
fi

# --- chart and results ---------------------------------------------------------
if [[ -n "$CHART" ]]; then
    "$LT" chart --input "$WORK/results.json" --out "$CHART" \
        --subtitle "$(date -u +%Y-%m-%d), $(nproc) cores, ${DURATION} s per run; ${VERSION[certfront]}$([[ -n "${VERSION[nginx]:-}" ]] && echo ", ${VERSION[nginx]}")$([[ -n "${VERSION[haproxy]:-}" ]] && echo ", ${VERSION[haproxy]}")" > /dev/null \
        && say "chart written to $CHART"
fi
if [[ -n "${RESULTS:-}" ]]; then cp "$WORK/results.json" "$RESULTS" && say "results (JSON lines) copied to $RESULTS"; fi

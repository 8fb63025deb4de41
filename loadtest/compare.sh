#!/usr/bin/env bash
# compare.sh: certfront against nginx and HAProxy on this machine, same work, same certificate, same backends.
#
# For each proxy it measures the CPU time the proxy's process tree spent
# (utime+stime from /proc, via `certfront-loadtest proc`) around each run, and
# divides by the work done (the requests or handshakes the client reports). That
# ratio survives the load generator sharing the cores with the proxy; requests/s
# and p99 are printed too but depend on it.
#
# certfront runs with its defaults: its configuration sets only what every proxy
# here is given alike (see the comments in certfront.toml below). The request rows
# run with three clients (certfront-loadtest, wrk for HTTP/1.1, h2load for HTTP/2)
# and against two backends: certfront-loadtest's backend, then nginx answering
# `return 200` (a real server's response headers); the proxies are restarted
# between the two. Full handshakes: certfront-loadtest, and wrk sending
# `Connection: close` (one full TLS 1.3 handshake per request; oha is not used).
#
# Usage:  loadtest/compare.sh            (from anywhere; ~10 minutes, 3.5 of them the 1,000 rotations)
# Env:    DURATION=10   seconds per certfront-loadtest run on the loadtest backend (the rows kept from before)
#         EXTRA_DURATION=5   seconds per wrk/h2load run and per run on the nginx backend
#         IDLE_CONNECTIONS=5000
#         BULK_BYTES=100000000
#         ROTATIONS=1000   certificate rotations under load (certfront only; 0 skips)
#         HOSTS=10000      hosts sharing one wildcard certificate (certfront, nginx; 0 skips)
#         NGINX_BACKEND=1  0 skips the runs against the nginx backend
#         CHART=loadtest/chart.svg   where the SVG chart of the request runs goes ("" skips)
#         RESULTS=FILE  also copy the JSON lines of every run there
#         CF_PORT=18443 NGINX_PORT=18444 HAPROXY_PORT=18445 BACKEND_PORT=18446   (loopback ports used)
#         KEEP=1        keep the work directory (configs, logs) for inspection
#         BIN_DIR=DIR   use the certfront and certfront-loadtest binaries in DIR, no build
# nginx, HAProxy, wrk and h2load are used when installed (Debian: apt-get install
# nginx-light haproxy wrk nghttp2-client); otherwise their cells say "skipped".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
BULK_BYTES=${BULK_BYTES:-100000000}
CF_PORT=${CF_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
HAPROXY_PORT=${HAPROXY_PORT:-18445}
BACKEND_PORT=${BACKEND_PORT:-18446}
EXTRA_DURATION=${EXTRA_DURATION:-5}
NGINX_BACKEND=${NGINX_BACKEND:-1}
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
# leaf NAME ec|rsa CERT KEY [ALTNAME]: a leaf that meets certfront's default policy.
leaf() {
    local name=$1 kind=$2 cert=$3 key=$4 alt=${5:+,DNS:$5} usage=digitalSignature
    if [[ $kind == rsa ]]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
        usage=digitalSignature,keyEncipherment
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
    fi
    chmod 600 "$key"
    openssl req -new -key "$key" -subj "/CN=$name" -out "$cert.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s%s\n' \
        "$usage" "$name" "$alt" > "$cert.ext"
    openssl x509 -req -in "$cert.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca-key.pem" \
        -CAcreateserial -days 2 -sha256 -extfile "$cert.ext" -out "$cert" 2>/dev/null
    rm -f "$cert.csr" "$cert.ext"
}
# Also for "localhost": wrk sends its URL's host as SNI and must resolve it, and
# *.localhost names do not resolve everywhere (h2load uses it too, for the same cert).
leaf "$NAME" ec "$WORK/leaf.pem" "$WORK/leaf-key.pem" localhost
leaf "$RSA_NAME" rsa "$WORK/leaf-rsa.pem" "$WORK/leaf-rsa-key.pem"
mkdir -p "$WORK/rotate"
leaf "$ROTATE_NAME" ec "$WORK/rotate/tls.crt" "$WORK/rotate/tls.key"
chmod 600 "$WORK"/*key*.pem
cat "$WORK/leaf.pem" "$WORK/leaf-key.pem" > "$WORK/haproxy.pem"
cat "$WORK/leaf-rsa.pem" "$WORK/leaf-rsa-key.pem" > "$WORK/haproxy-rsa.pem"

# --- backends ------------------------------------------------------------------
"$LT" backend --listen 127.0.0.1:0 --max-seconds 3600 > "$WORK/backend.addr" &
PIDS+=($!)
for _ in $(seq 50); do [[ -s "$WORK/backend.addr" ]] && break; sleep 0.1; done
BACKEND=$(head -1 "$WORK/backend.addr")
[[ -n "$BACKEND" ]] || { echo "error: the backend did not print its address" >&2; exit 1; }
say "loadtest backend on $BACKEND"

# The third-party backend: nginx answering a small text body with its own headers
# (Server, Date, Content-Type, Content-Length, Connection). keepalive_requests is
# raised from nginx's 1,000 so that the backend closing the proxies' upstream
# connections does not blur their per-request CPU (the loadtest backend never does).
NGINX_BACKEND_ADDR=""
if [[ "$NGINX_BACKEND" != 0 ]] && command -v nginx > /dev/null; then
    mkdir -p "$WORK/nginx-backend"
    cat > "$WORK/nginx-backend.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx-backend.pid;
error_log $WORK/nginx-backend-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-backend/body;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        default_type text/plain;
        location / { return 200 "nginx backend: ok\n"; }
    }
}
EOF
    nginx -c "$WORK/nginx-backend.conf" -p "$WORK/nginx-backend" -e "$WORK/nginx-backend-error.log" &
    PIDS+=($!)
    NGINX_BACKEND_ADDR=127.0.0.1:$BACKEND_PORT
    say "nginx backend on $NGINX_BACKEND_ADDR"
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
    printf '{"proxy":"%s","run":"%s","cpu_us_each":%s,%s\n' "$1" "$2" "$cpu" "${3#\{}" >> "$WORK/results.json"
}
# per_each AFTER BEFORE COUNT: CPU µs per unit, or n/a.
per_each() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "n/a" }'; }

# --- proxies -----------------------------------------------------------------
declare -A PORT PID VERSION
PROXIES=()
if command -v nginx > /dev/null; then VERSION[nginx]=$(nginx -v 2>&1 | sed 's/.*version: //'); fi
if command -v haproxy > /dev/null; then VERSION[haproxy]=$(haproxy -v | awk 'NR == 1 { print "HAProxy " $3 }'); fi   # awk reads it all: no SIGPIPE under pipefail
VERSION[certfront]="certfront $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"

# start_proxies UPSTREAM: writes the three configurations for that backend and starts every installed proxy.
start_proxies() {
    local up=$1
    PROXIES=()
    # certfront's defaults, except what every proxy here is given alike:
    cat > "$WORK/certfront.toml" <<EOF
[server]
listen = ["127.0.0.1:$CF_PORT"]
access_log = false              # nginx and HAProxy run with access logs off too
[tls]
trust = ["$WORK/ca.pem"]        # the throw-away root is private; certfront wants a chain to a trust anchor
resumption = false              # every proxy: no tickets, no session cache (full handshakes in the handshake rows)
[limits]
max_connections = 20000         # the idle-memory run holds IDLE_CONNECTIONS from 127.0.0.1;
max_connections_per_ip = 20000  # nginx's worker_connections and HAProxy's maxconn are raised for it too
[[host]]
fqdn = "$NAME"
aliases = ["localhost"]         # what wrk and h2load connect to (see the certificate)
cert = "$WORK/leaf.pem"
key = "$WORK/leaf-key.pem"
upstream = "http://$up"
[[host]]
fqdn = "$RSA_NAME"
cert = "$WORK/leaf-rsa.pem"
key = "$WORK/leaf-rsa-key.pem"
upstream = "http://$up"
[[host]]
fqdn = "$ROTATE_NAME"
cert = "$WORK/rotate/tls.crt"
key = "$WORK/rotate/tls.key"
upstream = "http://$up"
EOF
    # certfront serves on one thread per core (2 here), as the peers are set up to.
    RUST_LOG=warn "$CF" run -c "$WORK/certfront.toml" 2>> "$WORK/certfront.log" &
    PID[certfront]=$!; PIDS+=($!); PORT[certfront]=$CF_PORT
    PROXIES+=(certfront)

    if command -v nginx > /dev/null; then
        mkdir -p "$WORK/nginx"
        # keepalive 512: nginx keeps no upstream connection without `keepalive N` (with
        # proxy_http_version 1.1 and an empty Connection header, as its docs require).
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
    upstream backend { server $up; keepalive 512; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        server_name $NAME localhost;
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
        PROXIES+=(nginx)
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
    server s1 $up
EOF
        haproxy -db -f "$WORK/haproxy.cfg" 2>> "$WORK/haproxy.log" &
        PID[haproxy]=$!; PIDS+=($!); PORT[haproxy]=$HAPROXY_PORT
        PROXIES+=(haproxy)
    fi

    local p ready out
    for p in "${PROXIES[@]}"; do
        ready=""
        for _ in $(seq 100); do
            kill -0 "${PID[$p]}" 2>/dev/null || break
            # shellcheck disable=SC2046 # target's flags split on purpose
            out=$("$LT" --json requests $(target "$p") --connections 1 --duration 1 --max-requests 1 2>/dev/null || true)
            [[ "$(jnum requests "$out")" == 1 ]] && { ready=1; break; }
            sleep 0.2
        done
        [[ -n "$ready" ]] || { echo "error: $p did not answer; its log is in $WORK (run with KEEP=1)" >&2; KEEP=1; exit 1; }
        say "$p ready on 127.0.0.1:${PORT[$p]} (${VERSION[$p]}, pid ${PID[$p]}, backend $up)"
    done
}

# stop_proxies: ends the proxies start_proxies started, by their pid, and waits for them.
stop_proxies() {
    local p
    for p in "${PROXIES[@]}"; do kill "${PID[$p]}" 2>/dev/null || true; done
    for p in "${PROXIES[@]}"; do wait "${PID[$p]}" 2>/dev/null || true; done
}

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
    R[$p,$name.cpu]=$(per_each "$after" "$before" "$count")
    R[$p,$name.rate]=$(round "$(jnum "${key}_per_s" "$out")" 0)
    R[$p,$name.p99]=$(jnum p99_us "$out")
    record "$p" "$name" "$out" "${R[$p,$name.cpu]}"
    say "$p $name: $count $key, errors ${R[$p,$name.errors]:-0}, CPU ${R[$p,$name.cpu]} µs each"
}

# third PROXY NAME TOOL REQUESTS RATE P99 ERRORS BEFORE AFTER WORK: keeps a wrk or h2load run like measure does.
third() {
    local p=$1 name=$2 tool=$3 n=$4 rate=$5 p99=$6 errors=$7 before=$8 after=$9 work=${10}
    R[$p,$name.cpu]=$(per_each "$after" "$before" "${n:-0}")
    R[$p,$name.rate]=$(round "$rate" 0)
    R[$p,$name.p99]=$p99
    R[$p,$name.errors]=$errors
    record "$p" "$name" "{\"work\":\"$work\",\"client\":\"$tool\",\"requests\":${n:-0},\"requests_per_s\":${rate:-null},\"p99_us\":${p99:-null},\"errors\":${errors:-null}}" "${R[$p,$name.cpu]}"
    say "$p $name ($tool): ${n:-0} requests, errors ${errors:-?}, CPU ${R[$p,$name.cpu]} µs each, p99 ${p99:-?} µs"
}

# skipped PROXY NAME WHY: a run that could not be made.
skipped() { R[$1,$2.cpu]="skipped: $3"; R[$1,$2.rate]="skipped: $3"; R[$1,$2.p99]="skipped: $3"; R[$1,$2.errors]="-"; }

# wrk_run PROXY NAME [WRK ARGS]: wrk -t2 -c64 on https://localhost:PORT/ (HTTP/1.1; wrk
# offers no ALPN); its --latency distribution gives the p99 (per request, as measured).
wrk_run() {
    local p=$1 name=$2; shift 2
    command -v wrk > /dev/null || { skipped "$p" "$name" "wrk not installed"; return; }
    local before after out n rate p99 errors
    before=$(cpu_us "${PID[$p]}")
    out=$(wrk -t2 -c64 -d"${EXTRA_DURATION}s" --latency "$@" "https://localhost:${PORT[$p]}/" 2>&1) || true
    after=$(cpu_us "${PID[$p]}")
    echo "$out" >> "$WORK/wrk.log"
    n=$(awk '/ requests in / { print $1 }' <<< "$out")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' <<< "$out")
    p99=$(awk '$1 == "99%" { v = $2; u = $2; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
        m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : 0
        if (m > 0) printf "%.0f", v * m }' <<< "$out")
    errors=$(awk '/Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 } /Non-2xx or 3xx/ { e += $NF } END { print e + 0 }' <<< "$out")
    [[ -n "$n" ]] || { say "$p $name: wrk printed no result: $out"; errors="wrk failed"; }
    third "$p" "$name" wrk "$n" "$rate" "$p99" "$errors" "$before" "$after" "wrk -t2 -c64 $*"
}

# h2load_run PROXY NAME: h2load -c32 -m10 (HTTP/2 by ALPN, TLS 1.3) on https://localhost:PORT/;
# h2load prints no percentiles, so the p99 comes from its --log-file (µs per request).
h2load_run() {
    local p=$1 name=$2
    command -v h2load > /dev/null || { skipped "$p" "$name" "h2load not installed"; return; }
    local before after out n rate p99 errors log=$WORK/h2load-$p-$name.log
    before=$(cpu_us "${PID[$p]}")
    out=$(h2load -t2 -c32 -m10 -D "$EXTRA_DURATION" --connect-to="127.0.0.1:${PORT[$p]}" \
        --log-file="$log" "https://localhost:${PORT[$p]}/" 2>&1) || true
    after=$(cpu_us "${PID[$p]}")
    echo "$out" >> "$WORK/h2load.log"
    grep -q "TLS Protocol: TLSv1.3" <<< "$out" || say "$p $name: h2load did not report TLS 1.3: $(grep -E 'TLS Protocol|Application protocol' <<< "$out" | tr '\n' ' ')"
    # "requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout"
    n=$(awk '/^requests:/ { print $8 }' <<< "$out")
    errors=$(awk '/^requests:/ { print $10 + $12 + $14 }' <<< "$out")
    rate=$(awk '/^finished in/ { print $4 }' <<< "$out")
    p99=""
    if [[ -s "$log" ]]; then
        p99=$(awk '$2 >= 200 && $2 < 400 { print $3 }' "$log" | sort -n \
            | awk '{ a[NR] = $1 } END { if (NR > 0) { i = int(NR * 0.99); if (i < NR * 0.99) i++; print a[i] } }')
        rm -f "$log"
    fi
    [[ -n "$n" ]] || { say "$p $name: h2load printed no result: $out"; errors="h2load failed"; }
    third "$p" "$name" h2load "$n" "$rate" "$p99" "$errors" "$before" "$after" "h2load -t2 -c32 -m10"
}

# request_runs PROXY SUFFIX: the request rows (HTTP/1.1 and HTTP/2, every client) against the backend in use.
request_runs() {
    local p=$1 s=$2 t
    t=$(target "$p")
    # shellcheck disable=SC2086 # $t: the loadtest's flags, split on purpose
    "$LT" --threads 2 requests $t --h1 --connections 8 --duration 1 > /dev/null   # warm-up
    # The loadtest's runs on the loadtest backend keep the rows (and run names) of before: DURATION.
    local d=$DURATION; [[ -z "$s" ]] || d=$EXTRA_DURATION
    # shellcheck disable=SC2086
    measure "$p" "h1$s" requests -- requests $t --h1 --connections 32 --duration "$d"
    # shellcheck disable=SC2086
    measure "$p" "h2$s" requests -- requests $t --h2 --connections 32 --streams 10 --duration "$d"
    wrk_run "$p" "h1wrk$s"
    h2load_run "$p" "h2load$s"
}

# --- the loadtest backend: every row ----------------------------------------------
start_proxies "$BACKEND"
for p in "${PROXIES[@]}"; do
    t=$(target "$p")
    request_runs "$p" ""
    # shellcheck disable=SC2086
    measure "$p" hs handshakes -- handshakes $t --tls 1.3 --request --connections 16 --duration "$DURATION"
    # shellcheck disable=SC2046
    measure "$p" hsrsa handshakes -- handshakes $(target "$p" "$RSA_NAME") --tls 1.3 --request --connections 16 --duration "$DURATION"
    key=$(grep -o '"server_key":"[^"]*"' <<< "${R[$p,hsrsa.json]}" | cut -d'"' -f4)
    [[ "$key" == "RSA 2048" ]] || { say "$p served $key for $RSA_NAME, not RSA 2048: its RSA row is void"; R[$p,hsrsa.cpu]="n/a ($key)"; }
    # One full handshake per request: wrk reconnects after each response it asked to be closed.
    wrk_run "$p" hswrk -H "Connection: close"
    # shellcheck disable=SC2086
    out=$("$LT" --json throughput $t --direction down --bytes "$BULK_BYTES")
    R[$p,bulk]=$(round "$(jnum mb_per_s "$out")" 0)
    # shellcheck disable=SC2086
    out=$("$LT" --json throughput $t --direction up --bytes "$BULK_BYTES")
    R[$p,bulkup]=$(round "$(jnum mb_per_s "$out")" 0)
    # shellcheck disable=SC2086
    out=$("$LT" --json idle $t --connections "$IDLE_CONNECTIONS" --pid "${PID[$p]}")
    R[$p,idle]=$(round "$(jnum kb_per_connection "$out")" 1)
    record "$p" idle "$out"
    say "$p bulk down ${R[$p,bulk]} MB/s, up ${R[$p,bulkup]} MB/s, idle ${R[$p,idle]} KB/connection"
    # Backend connections the proxy opens per 1,000 requests once warm, 1,000 requests in flight;
    # after the idle run, whose RSS difference the 1,000 upstream connections would blur.
    # shellcheck disable=SC2086
    out=$("$LT" --json --threads 2 churn $t --backend "$BACKEND" --duration "$EXTRA_DURATION") || true
    R[$p,churn]=$(round "$(jnum backend_connections_per_1000_requests "$out")" 2)
    R[$p,churn.errors]=$(jnum errors "$out")
    [[ -z "$out" ]] || record "$p" churn "$out"
    say "$p churn: ${R[$p,churn]:-?} backend connections per 1,000 requests, errors ${R[$p,churn.errors]:-?}"
done

# --- rotation torture (certfront only: nginx and HAProxy need a reload to change a certificate) ---
if (( ROTATIONS > 0 )); then
    say "certfront rotate: $ROTATIONS rotations of $ROTATE_NAME (rename, in-place, k8s) under load"
    # shellcheck disable=SC2046 # target's flags split on purpose
    out=$("$LT" --json --threads 2 rotate $(target certfront "$ROTATE_NAME") --ca-key "$WORK/ca-key.pem" \
        --cert "$WORK/rotate/tls.crt" --key "$WORK/rotate/tls.key" --rotations "$ROTATIONS" \
        --timeline "$WORK/rotate-timeline.csv" --max-seconds $(( ROTATIONS * 6 + 60 ))) || say "rotate FAILED (details below)"
    [[ -n "$out" ]] && record certfront rotate "$out"
    R[certfront,rot.done]="$(jnum rotations "$out") / $ROTATIONS"
    R[certfront,rot.failed]="$(jnum failed_requests "$out") / $(jnum failed_handshakes "$out")"
    R[certfront,rot.delay]="$(round "$(jnum delay_p50_ms "$out")" 0) / $(round "$(jnum delay_p99_ms "$out")" 0) / $(round "$(jnum delay_max_ms "$out")" 0)"
    say "certfront rotate: $out"
fi

# --- the nginx backend: the request rows again, the proxies restarted to forward there ---
stop_proxies
if [[ -n "$NGINX_BACKEND_ADDR" ]]; then
    start_proxies "$NGINX_BACKEND_ADDR"
    for p in "${PROXIES[@]}"; do request_runs "$p" -nb; done
    stop_proxies
else
    why="no nginx backend"; [[ "$NGINX_BACKEND" != 0 ]] || why="NGINX_BACKEND=0"
    for p in "${PROXIES[@]}"; do for n in h1-nb h2-nb h1wrk-nb h2load-nb; do skipped "$p" "$n" "$why"; done; done
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
    local best="" v num='^[0-9]+([.][0-9]+)?$'
    for p in nginx haproxy; do
        v=${R[$p,$1]:-}
        [[ "$v" =~ $num ]] || continue
        if [[ -z "$best" ]]; then best=$v
        elif [[ $2 == lower ]]; then best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a < b) ? a : b }')
        else best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b) ? a : b }'); fi
    done
    v=${R[certfront,$1]:-}
    if [[ -z "$best" ]] || ! [[ "$v" =~ $num ]]; then echo "n/a"; else
        awk -v a="$v" -v b="$best" -v h="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f%s\n", a / b, (h == "higher") ? " (higher is better)" : "" }'
    fi
}
# errs PROXY RUN...: the error counts of those runs, " / " between.
errs() {
    local p=$1 out="" n; shift
    if [[ " ${PROXIES[*]} " != *" $p "* ]]; then echo "skipped"; return; fi
    for n in "$@"; do out+="${out:+ / }${R[$p,$n.errors]:-?}"; done
    echo "$out"
}
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$(cell nginx "$2")" "$(cell haproxy "$2")" "$(cell certfront "$2")" "$(ratio "$2" "$3")"; }
LB="loadtest backend"; NB="nginx backend"
LT1="certfront-loadtest 32 conns"; LT2="certfront-loadtest 32 conns × 10 streams"
WRK="wrk -t2 -c64"; H2L="h2load -c32 -m10"

echo
echo "certfront compare: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ${DURATION} s per certfront-loadtest run on the loadtest backend, ${EXTRA_DURATION} s per wrk/h2load run and per run on the nginx backend"
echo "versions: ${VERSION[certfront]}$([[ -n "${VERSION[nginx]:-}" ]] && echo ", ${VERSION[nginx]}")$([[ -n "${VERSION[haproxy]:-}" ]] && echo ", ${VERSION[haproxy]}")$(command -v wrk > /dev/null && echo ", wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')")$(command -v h2load > /dev/null && echo ", $(h2load --version | awk 'NR == 1 { print $2 }')")"
echo "p99: certfront-loadtest's own histogram; wrk's --latency distribution (99%); h2load's per-request times from --log-file (its own output has no percentiles)"
echo
echo "| work | nginx | haproxy | certfront | certfront / best peer |"
echo "|---|---|---|---|---|"
row "HTTP/1.1 keep-alive request, CPU µs: $LT1, $LB" h1.cpu lower
row "HTTP/1.1 keep-alive request, CPU µs: $WRK, $LB" h1wrk.cpu lower
row "HTTP/1.1 keep-alive request, CPU µs: $LT1, $NB" h1-nb.cpu lower
row "HTTP/1.1 keep-alive request, CPU µs: $WRK, $NB" h1wrk-nb.cpu lower
row "HTTP/2 request, CPU µs: $LT2, $LB" h2.cpu lower
row "HTTP/2 request, CPU µs: $H2L, $LB" h2load.cpu lower
row "HTTP/2 request, CPU µs: $LT2, $NB" h2-nb.cpu lower
row "HTTP/2 request, CPU µs: $H2L, $NB" h2load-nb.cpu lower
row "backend connections opened per 1,000 requests after warm-up, 1,000 in flight: certfront-loadtest churn, HTTP/2 100 conns × 10 streams, $LB" churn lower
row "full TLS 1.3 handshake + request, CPU µs (ECDSA P-256): certfront-loadtest 16 conns" hs.cpu lower
row "full TLS 1.3 handshake + request, CPU µs (RSA-2048): certfront-loadtest 16 conns" hsrsa.cpu lower
row "full TLS 1.3 handshake + request, CPU µs (ECDSA P-256): $WRK, Connection: close" hswrk.cpu lower
row "HTTP/1.1 requests/s: $LT1, $LB" h1.rate higher
row "HTTP/1.1 requests/s: $WRK, $LB" h1wrk.rate higher
row "HTTP/1.1 requests/s: $LT1, $NB" h1-nb.rate higher
row "HTTP/1.1 requests/s: $WRK, $NB" h1wrk-nb.rate higher
row "HTTP/1.1 p99 µs: $LT1, $LB" h1.p99 lower
row "HTTP/1.1 p99 µs: $WRK, $LB" h1wrk.p99 lower
row "HTTP/1.1 p99 µs: $LT1, $NB" h1-nb.p99 lower
row "HTTP/1.1 p99 µs: $WRK, $NB" h1wrk-nb.p99 lower
row "HTTP/2 requests/s: $LT2, $LB" h2.rate higher
row "HTTP/2 requests/s: $H2L, $LB" h2load.rate higher
row "HTTP/2 requests/s: $LT2, $NB" h2-nb.rate higher
row "HTTP/2 requests/s: $H2L, $NB" h2load-nb.rate higher
row "HTTP/2 p99 µs: $LT2, $LB" h2.p99 lower
row "HTTP/2 p99 µs: $H2L, $LB" h2load.p99 lower
row "HTTP/2 p99 µs: $LT2, $NB" h2-nb.p99 lower
row "HTTP/2 p99 µs: $H2L, $NB" h2load-nb.p99 lower
row "handshakes + request /s (ECDSA P-256): certfront-loadtest" hs.rate higher
row "handshakes + request /s (RSA-2048): certfront-loadtest" hsrsa.rate higher
row "handshakes + request /s (ECDSA P-256): $WRK, Connection: close" hswrk.rate higher
row "handshake + request p99 µs (ECDSA P-256): $WRK, Connection: close" hswrk.p99 lower
row "bulk download, MB/s" bulk higher
row "bulk upload, MB/s" bulkup higher
row "idle TLS connection, KB" idle lower
printf '| errors, %s (h1 / wrk / h2 / h2load / churn / handshakes ECDSA / RSA / wrk close) | %s | %s | %s | must be 0 |\n' "$LB" \
    "$(errs nginx h1 h1wrk h2 h2load churn hs hsrsa hswrk)" "$(errs haproxy h1 h1wrk h2 h2load churn hs hsrsa hswrk)" "$(errs certfront h1 h1wrk h2 h2load churn hs hsrsa hswrk)"
printf '| errors, %s (h1 / wrk / h2 / h2load) | %s | %s | %s | must be 0 |\n' "$NB" \
    "$(errs nginx h1-nb h1wrk-nb h2-nb h2load-nb)" "$(errs haproxy h1-nb h1wrk-nb h2-nb h2load-nb)" "$(errs certfront h1-nb h1wrk-nb h2-nb h2load-nb)"
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

# shellcheck shell=bash
# loadtest/lib.sh: shell pieces the measuring scripts share; sourced, not run.

# pki DIR NAME: a throw-away ECDSA P-256 root (DIR/ca.pem, DIR/ca-key.pem) and a leaf for
# NAME that meets certfront's default policy (DIR/leaf.pem, DIR/leaf-key.pem, mode 600).
pki() {
    local dir=$1 name=$2
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$dir/ca-key.pem" -subj "/CN=loadtest root" -days 2 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/leaf-key.pem" 2>/dev/null
    chmod 600 "$dir/leaf-key.pem"
    openssl req -new -key "$dir/leaf-key.pem" -subj "/CN=$name" -out "$dir/leaf.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
        "$name" > "$dir/leaf.ext"
    openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
        -days 2 -sha256 -extfile "$dir/leaf.ext" -out "$dir/leaf.pem" 2>/dev/null
}

# loadtest_backend LT DIR SECONDS: starts `LT backend` on a free loopback port for at most
# SECONDS; sets BACKEND (its address) and BPID.
# shellcheck disable=SC2034  # BACKEND and BPID are for the sourcing script
loadtest_backend() {
    "$1" backend --listen 127.0.0.1:0 --max-seconds "$3" > "$2/backend.addr" &
    BPID=$!
    for _ in $(seq 50); do [[ -s "$2/backend.addr" ]] && break; sleep 0.1; done
    BACKEND=$(head -1 "$2/backend.addr")
}

# free_port: a loopback port nothing listens on at this moment.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

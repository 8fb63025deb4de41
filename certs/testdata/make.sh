#!/bin/sh
# Regenerates the test fixtures in this directory with the openssl CLI.
#
# Only what rcgen cannot make lives here: a SHA-1-signed leaf (rcgen signs with SHA-256
# and up only), an RSA-1024 leaf (aws-lc-rs generates RSA >= 2048 only) and .pfx files
# written by OpenSSL itself (default AES-256 and -legacy RC2/3DES, as Windows exports).
# Everything is valid for 100 years so the fixtures never expire. TEST-ONLY KEYS.
#
# Usage: sh certs/testdata/make.sh   (from anywhere; writes next to this script)
set -eu
cd "$(dirname "$0")"
DAYS=36500
PASS=fixture-password
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The fixture root CA: RSA 2048, SHA-256 (like most Active Directory Certificate Services roots),
# so the SHA-1 leaf is signed sha1WithRSAEncryption, what old Windows CAs issued.
openssl genrsa -out "$tmp/ca-key.pem" 2048 2>/dev/null
openssl req -x509 -new -key "$tmp/ca-key.pem" -sha256 -days $DAYS \
  -subj "/CN=certfront fixture root" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

# leaf <name> <rsa bits|ec> <digest>: a server certificate for <name>.example.org signed by the root.
leaf() {
  name=$1 bits=$2 digest=$3
  if [ "$bits" = ec ]; then
    # SEC1 ("BEGIN EC PRIVATE KEY"), the form `openssl ecparam -genkey` writes
    openssl ecparam -name prime256v1 -genkey -noout -out "$name-key.pem"
  else
    openssl genrsa -out "$name-key.pem" "$bits" 2>/dev/null
  fi
  openssl req -new -key "$name-key.pem" -subj "/CN=$name.example.org" -out "$tmp/$name.csr"
  cat >"$tmp/$name.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$name.example.org
EOF
  openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -"$digest" -days $DAYS -extfile "$tmp/$name.ext" -out "$name.pem"
}

leaf sha1 2048 sha1       # signature rule: SHA-1
leaf rsa1024 1024 sha256  # key size rule: RSA 1024 bits
leaf ec 'ec' sha256       # a SEC1 EC key

# A good RSA-2048 leaf exported the two ways OpenSSL 3 can: the default (PBES2 AES-256-CBC,
# HMAC-SHA-256 MAC) and -legacy (RC2-40 for certificates, 3DES for the key, SHA-1 MAC: the
# format Windows' certificate export wizard writes).
leaf good 2048 sha256
# the same key as PKCS#1 ("BEGIN RSA PRIVATE KEY"), as older tools write it
openssl rsa -in good-key.pem -traditional -out good-key-pkcs1.pem 2>/dev/null
openssl pkcs12 -export -inkey good-key.pem -in good.pem -certfile ca.pem \
  -passout "pass:$PASS" -out good-aes.pfx
openssl pkcs12 -export -legacy -inkey good-key.pem -in good.pem -certfile ca.pem \
  -passout "pass:$PASS" -out good-legacy.pfx

# The good leaf and the root as PKCS#7 bundles (.p7b), the way CAs deliver a chain and
# Windows exports one, in DER and in PEM ("BEGIN PKCS7"); the root is listed first, since
# order means nothing in a bundle. And the leaf alone as a DER .cer.
openssl crl2pkcs7 -nocrl -certfile ca.pem -certfile good.pem -outform DER -out good-chain.p7b
openssl crl2pkcs7 -nocrl -certfile ca.pem -certfile good.pem -out good-chain-pem.p7b
openssl x509 -in good.pem -outform DER -out good.cer

#!/usr/bin/env bash
# tests/support/pki.sh: the one throwaway test PKI, for the Rust tests and
# the shell proofs alike. EC P-256 keys, two days of validity, one openssl
# call per certificate (OpenSSL >= 3.0: `req -x509 -CA`).
#
# Sourced (tests/e2e/lib.sh): pki_ca DIR NAME CN, then
# pki_cert DIR NAME CN PROFILE CA (PROFILE: server, for 127.0.0.1 and
# localhost, or client). Each returns non-zero with openssl's message on
# stderr when it fails.
#
# Run (tests/support/agent_site.rs, tests/support/attack.rs):
# `pki.sh DIR` makes the loopback set: `ca` signs `server` (127.0.0.1) and
# `client`; `other`, an unrelated CA, signs `stranger`. Exit 1 on failure.

# The profiles, once per directory.
_pki_cnf() {
    [ -s "$1/openssl.cnf" ] && return 0
    mkdir -p "$1" && cat >"$1/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = clientAuth
CNF
}

_pki_req() { # DIR NAME CN PROFILE [openssl req args...]
    local dir=$1 name=$2 cn=$3 profile=$4 err
    shift 4
    _pki_cnf "$dir" || return 1
    err=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -config "$dir/openssl.cnf" -extensions "$profile" -subj "/CN=$cn" \
        -keyout "$dir/$name.key" -out "$dir/$name.crt" "$@" 2>&1) \
        || { echo "openssl: $name: $err" >&2; return 1; }
}

# A self-signed CA: DIR/NAME.crt and DIR/NAME.key.
pki_ca() { # DIR NAME CN
    _pki_req "$1" "$2" "$3" ca
}

# A certificate signed by DIR/CA: DIR/NAME.crt and DIR/NAME.key.
pki_cert() { # DIR NAME CN PROFILE CA
    _pki_req "$1" "$2" "$3" "$4" -CA "$1/$5.crt" -CAkey "$1/$5.key"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    dir=${1:?usage: pki.sh DIR}
    pki_ca "$dir" ca "ovt test ca"
    pki_ca "$dir" other "ovt test other"
    pki_cert "$dir" server 127.0.0.1 server ca
    pki_cert "$dir" client client client ca
    pki_cert "$dir" stranger stranger client other
fi

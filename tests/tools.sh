#!/usr/bin/env bash
# Makes sure the judges the tests use are installed: cfssl/cfssljson (Debian golang-cfssl), openssl, etcd 3.4
# (etcd-server, etcd-client), Go (golang-go: the CRL is parsed by Go's crypto/x509) and promtool (prometheus: the
# metrics format), SoftHSM2 and pkcs11-tool (softhsm2, opensc: a PKCS#11 token for the CA key) and the compiler that
# `make pkcs11-deps` needs for the native addon pkcs11js (g++, make, python3). Installs what is missing with apt-get
# when running as root. Under CI=true a tool that is still missing fails the run; elsewhere the tests that need it
# say so and fail too.
set -euo pipefail

need=()
command -v cfssl >/dev/null && command -v cfssljson >/dev/null || need+=(golang-cfssl)
command -v openssl >/dev/null || need+=(openssl)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v go >/dev/null || need+=(golang-go)
command -v promtool >/dev/null || need+=(prometheus)
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tools: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d keeps the etcd and prometheus packages from starting their services
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.tls-setup && chmod +x /usr/sbin/policy-rc.d.tls-setup
    if [ ! -e /usr/sbin/policy-rc.d ]; then cp /usr/sbin/policy-rc.d.tls-setup /usr/sbin/policy-rc.d; added_policy=1; fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [ "${added_policy:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.tls-setup
  else
    echo "tools: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
  fi
fi

missing=()
for t in cfssl cfssljson openssl etcd etcdctl go promtool softhsm2-util pkcs11-tool g++ make python3; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools: still missing: ${missing[*]}" >&2
  [ "${CI:-}" = true ] && exit 1
fi

# the PKCS#11 provider (pkcs11/node_modules), which tests/pkcs11-*.test.ts use (they run this too when alone)
if command -v g++ >/dev/null && command -v softhsm2-util >/dev/null; then
  make --no-print-directory -C "$(dirname "$0")/.." pkcs11-deps || { echo "tools: make pkcs11-deps failed" >&2; [ "${CI:-}" = true ] && exit 1; }
fi
exit 0

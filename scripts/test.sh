#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests talk to (Debian
# packages as root, Python packages with pip), builds the binaries the end-to-end
# tests start, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: python3 for the real clients (imaplib, poplib, smtplib), slapd for
# the LDAP password-location tests, postfix for its socketmap client, isync (mbsync),
# openssl and fetchmail (below).
need_pkgs=()
command -v python3 >/dev/null || need_pkgs+=(python3 python3-pip)
command -v md5sum >/dev/null || need_pkgs+=(coreutils)
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || need_pkgs+=(slapd ldap-utils)
# Postfix's own socketmap client (postmap) checks our socketmap server.
[ -x /usr/sbin/postmap ] || need_pkgs+=(postfix)
# isync's mbsync syncs a multi-folder account both ways against our IMAP server.
command -v mbsync >/dev/null || need_pkgs+=(isync)
# openssl s_client checks the TLS versions; fetchmail downloads a maildrop over POP3.
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v fetchmail >/dev/null || need_pkgs+=(fetchmail)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    # "No configuration": no system Postfix instance; tests run their own.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing: ${need_pkgs[*]} (run as root to install them)" >&2
    exit 1
  fi
fi
# Debian's slapd starts a system instance on install; the tests run their own.
if [ "$(id -u)" = 0 ] && command -v service >/dev/null; then
  service slapd stop >/dev/null 2>&1 || true
fi

# Python packages: scramp is an independent SCRAM-SHA-256 client that checks our
# server signature.
python3 -c "import scramp" 2>/dev/null || python3 -m pip install -q scramp

# A one-off build gains nothing from incremental state (it doubled the target directory).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --workspace --bins
cargo test --workspace

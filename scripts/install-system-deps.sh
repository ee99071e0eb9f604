#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (idempotent): PostgreSQL server binaries, and Chromium
# for the dashboard's browser tests (driven by Python Playwright through /usr/bin/chromium: no browser download).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "system deps: present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "system deps: need ${need[*]} but not root and no sudo; tests needing them will be skipped" >&2
    exit 0
  fi
fi
echo "system deps: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a cluster on install in some images; the tests run their own on a private port.

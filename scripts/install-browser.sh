#!/usr/bin/env bash
# Install what the serving browser test (tests/test_serving_browser.py) needs, from scratch:
#   Debian's chromium + chromium-driver (versions match: built from one source package), and the
#   Python selenium client (pure Python, from PyPI). Nothing is downloaded at test time.
# Idempotent: already-present pieces are skipped. Usage: scripts/install-browser.sh [PYTHON]
set -euo pipefail

PYTHON="${1:-${PYTHON:-python3}}"

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "install-browser: chromium and chromedriver already installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-browser: need root or sudo for apt-get" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi

if "$PYTHON" -c "import selenium" >/dev/null 2>&1; then
  echo "install-browser: selenium already installed"
else
  "$PYTHON" -m pip install -q "selenium>=4.11"
fi

# chromium's wrapper script prints a harmless shell warning on some hosts; keep only the version line
chromium --version 2>/dev/null | head -n 1
chromedriver --version | head -n 1
"$PYTHON" -c "import selenium; print('selenium', selenium.__version__)"

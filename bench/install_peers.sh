#!/usr/bin/env bash
# The `bench` extra without letting pip resolve it: torch's local CPU wheel first (any
# other torch spec downloads GBs), then alibi-detect without its dependency pins
# (numpy<2, numba<0.60, pillow<11 would downgrade this project's stack), then what its
# pytorch online detectors import.
set -euo pipefail
PY=${PYTHON:-python}
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q --no-deps alibi-detect==0.13.0
"$PY" -m pip install -q "transformers==4.57.6" tqdm catalogue "dill<0.4" toml numba==0.68.0
"$PY" -c "from alibi_detect.cd import MMDDriftOnline, LSDDDriftOnline" 2>/dev/null \
  && echo "alibi-detect online detectors importable" >&2

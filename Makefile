# The two commands of the README: `make demo` and `make test`. Both install first.
PY ?= python3

.PHONY: install demo test test-fast lint schemas bench

install:
	PYTHON=$(PY) bash scripts/install.sh

# The demo needs the local broker, the photo scenes and the page's server, not the test tools.
demo:
	PYTHON=$(PY) EXTRAS=local,sim,api bash scripts/install.sh
	$(PY) -m driftline demo

# Two pytest workers, one file each at a time (module fixtures stay in one process):
# integration tests mostly wait on their broker, worker and sinks processes.
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile -p no:benchmark --durations=15

test-fast: install
	$(PY) -m pytest -q -m "not integration and not chaos and not slow"

lint:
	$(PY) -m ruff check .
	$(PY) -m mypy driftline schemas processors producers sinks

schemas:
	$(PY) -m schemas.export

bench: install
	$(PY) bench/bench_embed.py
	$(PY) bench/bench_detectors.py

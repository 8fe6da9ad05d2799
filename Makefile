# fleetprof — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STACK ?= dev
# one kernel cache for every process of the suite, compiled once by the warm-up; the
# sandboxed container test mounts it read-only where the image keeps its own
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

.PHONY: run test bench stress lint preview policy clean proto ui
# the explorer's assets: `npm ci` when the lock file changed, a build when a source changed
UI_DEPS := ui/node_modules/.installed
UI_BUILT := fleetprof/explorer/BUILT
# the OpenTelemetry JavaScript SDK the trace tests export OTLP JSON with: `npm ci` when its lock file changed
OTEL_JS_DEPS := tests/traces/otel_js/node_modules/.installed

$(STAMP): pyproject.toml constraints.txt
	command -v chromium >/dev/null 2>&1 && command -v bwrap >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap iproute2 >/dev/null)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	touch $@

$(UI_BUILT): $(UI_DEPS) ui/build.mjs ui/tsconfig.json $(wildcard ui/src/*)
	cd ui && npm run build

ui: $(UI_BUILT)

$(OTEL_JS_DEPS): tests/traces/otel_js/package.json tests/traces/otel_js/package-lock.json
	cd tests/traces/otel_js && npm ci --no-audit --no-fund
	touch $@

run: $(STAMP) $(UI_BUILT)
	$(PY) -m fleetprof.warmup
	$(PY) -m fleetprof.demo

# the warm-up compiles the numba kernels once (about 15 s after a fresh checkout), so that
# no test or server subprocess pays for it under a timeout
test: $(STAMP) $(UI_BUILT) $(OTEL_JS_DEPS)
	$(PY) -m fleetprof.warmup
	$(PY) -m pytest -q -p no:cacheprovider -m "not stress"

bench: $(STAMP) $(UI_BUILT)
	$(PY) -m fleetprof.warmup
	$(PY) -m benchmarks.run_all

stress: $(STAMP)
	$(PY) -m fleetprof.warmup
	$(PY) -m pytest -q -p no:cacheprovider -m stress tests/stress --timeout 3600

lint: $(STAMP)
	$(VENV)/bin/ruff check fleetprof workers components policies tests benchmarks

preview: $(STAMP)
	$(PY) -m components.preview --stack $(STACK)

policy: $(STAMP)
	$(PY) -m policies.offline --stack $(STACK)

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Ifleetprof/formats/proto --python_out=fleetprof/formats/proto fleetprof/formats/proto/*.proto
	sed -i 's/^import \(\w*_pb2\) as/from . import \1 as/' fleetprof/formats/proto/*_pb2.py

clean:
	rm -rf $(VENV) .fleetprof .numba-cache build *.egg-info ui/node_modules tests/traces/otel_js/node_modules fleetprof/explorer

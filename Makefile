# Two commands on a fresh machine: `make acceptance` and `make test`. Both install what they need
# (a virtualenv here, Node.js and the gateway versions under .cache/ on first use).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOAK ?= 120
BASELINE ?= 60
LATE_WATCH_DELAY ?= 20
ARGS ?=

.PHONY: acceptance report test unit bench drill soak-long lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The embedded default: real OpenClaw 2026.3.28 -> 2026.4.1 on loopback against the model lab.
# The report is rendered whatever the verdict; the exit code stays the run's. RUN_DIR=DIR puts
# the run (and its report) there instead of reports/<run-id>.
acceptance: $(STAMP)
	$(BIN)/pytest scenarios --soak $(SOAK) --baseline $(BASELINE) \
		--late-watch-delay $(LATE_WATCH_DELAY) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(ARGS); \
	status=$$?; $(BIN)/harness report $(RUN_DIR) || true; exit $$status

# Render a run's Allure results to HTML (default: reports/latest) with the real Allure CLI.
report: $(STAMP)
	$(BIN)/harness report $(RUN)

# pytest-xdist workers. The unit tests mostly wait (model lab replies, subprocesses): twice as
# many workers as cores. The end-to-end tests wait too (soak windows, a slow reasoner silent for
# 70 s, watches, quiet delays), but a real gateway under soak traffic costs about half a core:
# tests marked `soaks` take one of a machine-wide set of slots, one more than cores
# (tests/conftest.py), and two more workers than slots go on with the rest meanwhile; no more
# than memory holds (3 GB each: two gateways, a model lab, a container). WORKERS=N sets both;
# WORKERS=0 runs serially.
CORES := $(shell nproc 2>/dev/null || echo 2)
MEMORY_GB := $(shell awk '/MemTotal/ {print int($$2 / 1048576)}' /proc/meminfo 2>/dev/null || echo 8)
UNIT_WORKERS := $(shell echo $$(( $(CORES) * 2 )))
E2E_WORKERS := $(shell n=$$(( $(CORES) + 3 )); m=$$(( $(MEMORY_GB) / 3 )); \
	[ $$m -lt $$n ] && n=$$m; [ $$n -lt 1 ] && n=1; echo $$n)
ifdef WORKERS
UNIT_WORKERS := $(WORKERS)
E2E_WORKERS := $(WORKERS)
endif
# one test and those that use its run stay on one worker (@pytest.mark.xdist_group)
XDIST := --dist loadgroup

# The harness's own tests: unit tests first (fast), then end-to-end runs of the real gateway,
# each with the ten slowest tests at the end, so the next person sees where the time goes.
# Serially, to debug: `make test WORKERS=0`.
test: $(STAMP)
	$(BIN)/pytest tests -m "not e2e" -q -n $(UNIT_WORKERS) $(XDIST) --durations=10
	$(BIN)/pytest tests -m e2e -v -n $(E2E_WORKERS) $(XDIST) --durations=10

unit: $(STAMP)
	$(BIN)/pytest tests -m "not e2e" -q -n $(UNIT_WORKERS) $(XDIST) --durations=10

# Speed and accuracy numbers, measured side by side in one run (no thresholds: shared machines):
# the soak driver and signal pipeline against the model lab, then rollback by prefix switch
# against rollback by reinstall on the real gateway, then fleets of 1, 2 and 3 members against
# one gateway (two soak slots held: `python -m bench.fleet` alone, about 10 minutes).
bench: $(STAMP)
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.rollback $(ARGS)
	$(BIN)/python -m bench.fleet

# Fault injections on the real gateway: SIGKILL, SIGTERM and SIGINT at 8 boundaries of real
# runs (each a minute or more, one soak slot at a time), then a table: time to a proven version
# serving, the verdict, orphans. ARGS="--only during_soak --signals KILL" runs a subset.
drill: $(STAMP)
	$(BIN)/python -m bench.drill $(ARGS)

# Does the harness hold an hour? The load driver, its live judge, the log watcher and the
# shipped policy for MINUTES (default 60) against the model lab at its time scale 0.1, printing
# every 5 minutes the send lag, the judge's CPU share and the resident memory beside their
# goals. `make soak-long MINUTES=5` to check it.
MINUTES ?= 60
soak-long: $(STAMP)
	$(BIN)/python -m bench.soak_long --minutes $(MINUTES) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check harness scenarios tests bench conftest.py

clean:
	rm -rf .cache/runs reports/2*

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

.PHONY: acceptance report test unit bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The embedded default: real OpenClaw 2026.3.28 -> 2026.4.1 on loopback against the model lab.
# The report is rendered whatever the verdict; the exit code stays the run's.
acceptance: $(STAMP)
	$(BIN)/pytest scenarios --soak $(SOAK) --baseline $(BASELINE) \
		--late-watch-delay $(LATE_WATCH_DELAY) $(ARGS); status=$$?; \
	$(BIN)/harness report || true; exit $$status

# Render a run's Allure results to HTML (default: reports/latest) with the real Allure CLI.
report: $(STAMP)
	$(BIN)/harness report $(RUN)

# The harness's own tests: unit tests first (fast), then end-to-end runs of the real gateway.
test: $(STAMP)
	$(BIN)/pytest tests -m "not e2e" -q
	$(BIN)/pytest tests -m e2e -v

unit: $(STAMP)
	$(BIN)/pytest tests -m "not e2e" -q

# Speed and accuracy numbers, measured side by side in one run (no thresholds: shared machines):
# the soak driver and signal pipeline against the model lab, then rollback by prefix switch
# against rollback by reinstall on the real gateway.
bench: $(STAMP)
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.rollback $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check harness scenarios tests bench conftest.py

clean:
	rm -rf .cache/runs reports/2*

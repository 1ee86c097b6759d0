# HA testbed. The two commands a new user needs:
#   make acceptance   bring the testbed up and run the acceptance scenarios
#   make test         unit tests and Docker integration tests
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
PROJECT ?= hatb
TB_TAG  ?= latest
LOAD    ?=
# VARIANT=external-db: the database servers on two hosts of their own (compose/external-db.yml)
VARIANT ?=
export TB_TAG
export TB_PROJECT := $(PROJECT)
ifneq ($(VARIANT),)
export TB_VARIANT := $(VARIANT)
endif

.PHONY: help venv images testbed-up status logs testbed-down heal acceptance test unit bench chaos soak selftest clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VPY): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required; set PY=...)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $(VPY)

venv: $(VPY) ## the harness's virtualenv (.venv)

images: ## build every image from Debian packages (no registry needed)
	TAG=$(TB_TAG) bash images/build.sh

testbed-up: $(VPY) ## bring the testbed up (builds missing images), wait until healthy, print status
	$(VPY) -m harness.testbed up

status: $(VPY) ## status table of the running testbed
	$(VPY) -m harness.testbed status

logs: $(VPY) ## logs of every node
	$(VPY) -m harness.testbed logs

heal: $(VPY) ## heal every fault left behind (containers stopped/paused, cuts) and wait healthy
	$(VPY) -m harness.testbed heal

testbed-down: $(VPY) ## remove everything the testbed created
	$(VPY) -m harness.testbed down

# SHARD=i/N: slice i of N of the matrix (merge the runs: python -m harness.report merge);
# Allure results go to ALLURE_DIR (Allure merges the shards' results by itself)
SHARD      ?=
ALLURE_DIR ?= runs/allure-results
acceptance: $(VPY) ## bring the testbed up and run the acceptance scenarios (report in runs/latest; LOAD=light for a quick run, SHARD=i/N a slice)
	TB_LOAD=$(LOAD) TB_SHARD=$(SHARD) $(VPY) -m pytest scenarios --alluredir=$(ALLURE_DIR) $(PYTEST_ARGS)

unit: $(VPY) ## fast unit tests only (no Docker)
	$(VPY) -m pytest tests -m "not integration" $(PYTEST_ARGS)

# The external-db variant's own tests and its MySQL and host operations, on a testbed of
# their own (PROJECT-xdb), after the main run has removed its testbed: one heavy testbed
# at a time.
XDB_OPS := shutdown-mysql-master kill-mysql-master shutdown-mysql-slave kill-mysql-slave \
	power-off-master shutdown-master cut-master-networks power-off-slave shutdown-slave cut-slave-networks
XDB_PYTEST_ARGS ?=
# Then the ss7 variant's tests and its SS7 operations (SS7 on the units, the ss7-peer container), on a third
# testbed of their own (PROJECT-ss7).
SS7_PYTEST_ARGS ?=
test: $(VPY) ## unit tests, Docker integration tests and the acceptance scenarios; then the external-db variant's MySQL and host operations, and the ss7 variant's tests
	@rc=0; $(VPY) -m pytest tests scenarios $(PYTEST_ARGS) || rc=$$?; \
	TB_VARIANT=external-db TB_PROJECT=$(PROJECT)-xdb $(VPY) -m pytest tests/variants scenarios/test_matrix.py \
	  --tb-runs=runs/external-db -k "external_db or $(shell echo $(XDB_OPS) | sed 's/ / or /g')" \
	  $(XDB_PYTEST_ARGS) || rc=$$?; \
	TB_VARIANT=ss7 TB_PROJECT=$(PROJECT)-ss7 $(VPY) -m pytest tests/variants scenarios/test_matrix.py --tb-runs=runs/ss7 \
	  $(SS7_PYTEST_ARGS) || rc=$$?; \
	exit $$rc

# One BENCH_DIR for all scripts, so one results.json / results.md covers them; the table
# is printed also when a script failed, and make fails with that script's status.
bench: $(VPY) ## benchmarks: switchover, bring-up, unit failover times over several runs, SS7 changeover/takeover/calls per s (processes on this machine, then the ss7 variant's testbed), a 30-minute chaos run (runs/bench-<time>/results.md)
	@export BENCH_DIR=runs/bench-$$(date +%Y%m%d-%H%M%S); \
	$(VPY) bench/bringup.py $(BENCH_ARGS) && \
	$(VPY) bench/switchover.py $(BENCH_ARGS) && \
	$(VPY) bench/units.py $(BENCH_ARGS) && \
	$(VPY) bench/ss7.py $(BENCH_ARGS) && \
	TB_VARIANT=ss7 TB_PROJECT=$(PROJECT)-ss7 $(VPY) bench/ss7_testbed.py $(BENCH_ARGS) && \
	$(VPY) bench/chaos.py $(CHAOS_BENCH_ARGS); rc=$$?; \
	$(VPY) bench/results.py $$BENCH_DIR && exit $$rc

# SEED replays a run (the same faults at the same moments); STEPS runs exactly that many
# steps of it (what a failed run prints as its shortest failing prefix)
SEED     ?=
STEPS    ?=
DURATION ?= 180
chaos: $(VPY) ## random single and double faults under load for DURATION s (SEED=n replays, STEPS=n a prefix)
	$(VPY) -m harness.testbed up
	$(VPY) -m scenarios.chaos $(if $(SEED),--seed $(SEED)) $(if $(STEPS),--steps $(STEPS),--duration $(DURATION)) $(CHAOS_ARGS)

soak: $(VPY) ## 30 minutes of the matrix load with no fault: switchovers, unit moves, reboots must stay 0
	$(VPY) bench/soak.py $(SOAK_ARGS)

selftest: $(VPY) ## known HA bugs (bench/bugs) each caught by a matrix operation; minutes per bug
	$(VPY) bench/selftest.py $(SELFTEST_ARGS)

clean: testbed-down
	rm -rf $(VENV) images/.wheelhouse runs

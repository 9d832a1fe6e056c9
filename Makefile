# The two commands that matter: `make demo` and `make test` (both work from a fresh clone).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_DIR ?= demo
DEMO_ARGS ?=

# Debian packages the tests use (real servers started by the tests themselves).
# Installed by `make system-deps` (part of `make test`) when missing; needs root, as in CI.
SYSTEM_PACKAGES ?= slurm-wlm slurmdbd munge mariadb-server mariadb-client chromium chromium-driver slapd ldap-utils nats-server prometheus influxdb

.PHONY: demo test install lint bench clean system-deps frontend test-oidc fuzz-api fuzz

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Browser assets (uPlot, Swagger UI) from the npm registry, pinned by package-lock.json; served by the
# web process from frontend/node_modules (Node.js is needed only here, never at run time).
frontend/node_modules/.installed: frontend/package-lock.json
	cd frontend && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

frontend: frontend/node_modules/.installed

# The OpenID Connect provider the OIDC login tests start (npm oidc-provider, pinned by its lock file).
tests/oidc/node_modules/.installed: tests/oidc/package-lock.json
	cd tests/oidc && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

test-oidc: tests/oidc/node_modules/.installed

lint: install
	$(VENV)/bin/ruff check .

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install system-deps frontend test-oidc
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

# schemathesis against a real installation with many more examples than `make test` runs
# (tests/test_schemathesis.py; FUZZ_API_EXAMPLES per operation, FUZZ_API_STEPS per stateful scenario,
# random generation from FUZZ_API_SEED).
FUZZ_API_EXAMPLES ?= 300
FUZZ_API_STEPS ?= 20
FUZZ_API_SEED ?= $(shell date +%s)
fuzz-api: install
	@echo "schemathesis seed $(FUZZ_API_SEED) (make fuzz-api FUZZ_API_SEED=$(FUZZ_API_SEED) repeats this run)"
	CC_FUZZ_API_EXAMPLES=$(FUZZ_API_EXAMPLES) CC_FUZZ_API_STEPS=$(FUZZ_API_STEPS) CC_FUZZ_API_SEED=$(FUZZ_API_SEED) \
		$(VENV)/bin/pytest -q tests/test_schemathesis.py

demo: install frontend
	$(PY) -m supervisor.demo --dir $(DEMO_DIR) $(DEMO_ARGS)

bench: install
	$(PY) bench/run_all.py

# Coverage-guided fuzzing (atheris = libFuzzer for Python) of the parsers: FUZZ_SECONDS per target
# (FUZZ_TARGETS to pick), corpus seeded from the project's own data in fuzz/corpus/<target>, crashes
# written to fuzz/artifacts/.  Exits non-zero on the first target that finds a crash.
FUZZ_SECONDS ?= 180
FUZZ_TARGETS ?= lineproto wal snapshot archive cluster expr
fuzz: install
	$(PIP) install -q -e '.[test,fuzz]'
	$(PY) fuzz/seed.py
	mkdir -p fuzz/artifacts
	for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		$(PY) fuzz/fuzz_$$t.py fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
			-dict=fuzz/json.dict -artifact_prefix=fuzz/artifacts/$$t- -print_final_stats=1 || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

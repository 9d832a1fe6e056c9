# The two commands that matter: `make demo` and `make test` (both work from a fresh clone).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_DIR ?= demo

# Debian packages the tests use (real servers started by the tests themselves).
# Installed by `make system-deps` (part of `make test`) when missing; needs root, as in CI.
SYSTEM_PACKAGES ?= slurm-wlm slurmdbd munge mariadb-server mariadb-client

.PHONY: demo test install lint bench clean system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

demo: install
	$(PY) -m supervisor.demo --dir $(DEMO_DIR)

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The two commands that do all set-up: `make demo` (the main job) and `make test` (the tests).
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.geoadapt-installed
# torch is installed first, pinned to the CPU build that the project is tested with, so that
# resolving the other dependencies never pulls a multi-GB CUDA build of a newer torch;
# constraints.txt holds the same pin while the rest (sevenn's dependencies included) resolves.
TORCH := torch==2.13.0
PYTEST_ARGS ?= -n 2
# MACE's releases pin e3nn==0.4.4 and sevenn needs e3nn>=0.5, so they cannot share one environment: the MACE tests
# (tests_mace/) run in a second one, with mace-torch and geoadapt but not the sevennet extra.
VENV_MACE := .venv-mace
STAMP_MACE := $(VENV_MACE)/.geoadapt-installed

.PHONY: demo envs test test-mace test-all lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,sevennet]'
	touch $(STAMP)

$(STAMP_MACE): pyproject.toml constraints.txt
	test -x $(VENV_MACE)/bin/python || $(PYTHON) -m venv $(VENV_MACE)
	$(VENV_MACE)/bin/python -m pip install --quiet $(TORCH)
	$(VENV_MACE)/bin/python -m pip install --quiet -c constraints.txt -e '.[mace]' 'pytest>=7.4'
	touch $(STAMP_MACE)

demo: $(STAMP)
	$(BIN)/python -m geoadapt.demo

# pytest exits 5 when it collected no test: that is a failure here, never a pass. The MACE tests run after the main
# suite, whatever its result; either failing fails the target.
# The two environments are set up side by side (their installs wait mostly on the disk and the index, not the CPU).
envs:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(STAMP_MACE)

test: envs
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=1; fi; \
	$(MAKE) --no-print-directory test-mace; mace=$$?; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$mace

test-mace: $(STAMP_MACE)
	@$(VENV_MACE)/bin/python -m pytest tests_mace; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-mace: pytest collected no MACE tests" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check geoadapt tests benchmarks docs
	$(BIN)/ruff format --check geoadapt tests benchmarks docs

clean:
	rm -rf $(VENV) $(VENV_MACE) .pytest_cache .ruff_cache

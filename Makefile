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

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,sevennet]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m geoadapt.demo

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check geoadapt tests benchmarks docs
	$(BIN)/ruff format --check geoadapt tests benchmarks docs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# edgevision: `make demo` sets up .venv and detects faces on the bundled photo; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch and torchvision come from this machine's disk, pinned; never let pip resolve others.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgevision detect src/edgevision/assets/astronaut.png --out out/demo
	@echo "annotated image: out/demo/astronaut.jpg"

test: $(STAMP)
	# Two test processes for the two cores, a test file per process at a time (module fixtures built once).
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf out .pytest_cache

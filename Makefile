# forex_diffusion — developer commands. Everything runs inside .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2
export TORCH_NUM_THREADS ?= 1

.PHONY: install quickstart test lint bench bench-detail docs clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,docs,scale,peers]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/forex-diffusion quickstart $(foreach f,$(DATA),--data $(f))

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# side by side with the baseline commit (benchmarks/BASELINE or FD_BENCH_BASELINE), see bench_speed.py
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_speed.py $(BENCH_ARGS)

bench-detail: $(STAMP)
	@for f in benchmarks/bench_*.py; do [ $$f = benchmarks/bench_speed.py ] || { echo "== $$f"; $(BIN)/python $$f || exit 1; }; done

# The site (API, CLI, config and error references generated from the code) into site/.
docs: $(STAMP)
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site

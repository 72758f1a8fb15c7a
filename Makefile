# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,fasttext,toxicity,embed,embed-transformer,tokens,trainers]'
	touch $@

.PHONY: install browser demo test lint bench clean
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/curate run data_samples/recipe.yaml --force
	$(BIN)/curate query runs/demo "SELECT source, count(*) AS n FROM records GROUP BY 1 ORDER BY 1"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy curate
	$(BIN)/lint-imports

# Headless Chromium (Debian's package) for the report rendering test; best effort: without root
# or apt-get the test is skipped, never failed.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq >/dev/null 2>&1 \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } \
	  || echo "chromium is not installed: the report rendering test will be skipped"

test: lint browser
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

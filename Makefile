# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit conformance clean vendor-leaflet basemap

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/voltlib demo

lint: install
	$(BIN)/ruff check src tests

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

conformance: install
	$(BIN)/voltlib conformance

# The dashboard map's vendored Leaflet (needs npm; never run by the tests) and the offline Paris
# basemap, built from Paris Open Data's arrondissements export (ARRONDISSEMENTS=path/to/file.geojson).
vendor-leaflet:
	bash tools/vendor_leaflet.sh

basemap: install
	$(BIN)/python tools/paris_basemap.py $(ARRONDISSEMENTS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

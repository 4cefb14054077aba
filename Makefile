# The two set-up commands of the README: `make example` and `make test`.
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: example test lint format bench bench-population

$(STAMP): pyproject.toml scripts/make-venv
	bash scripts/make-venv $(VENV)
	touch $(STAMP)

example: $(STAMP)
	$(VENV)/bin/asuc-bayes forecast --example

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_forecast.py

bench-population: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_population.py

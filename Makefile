# The two set-up commands of the README: `make example` and `make test`.
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: example test lint format bench browser bench-population bench-sbc bench-sbc-marginal bench-scale

$(STAMP): pyproject.toml scripts/make-venv
	bash scripts/make-venv $(VENV)
	touch $(STAMP)

# Also the one-time compilation of the model's densities (cached on disk: no later command pays),
# and of the default population fit's (marginal, weak priors; ~25 s once).
example: $(STAMP)
	$(VENV)/bin/asuc-bayes forecast --example
	$(VENV)/bin/python -c "from asuc_bayes import load_model; from asuc_bayes.inference.population import prepare_population_model; prepare_population_model(load_model(), 2)"

# Debian's chromium for the browser tests (apt-get, only when /usr/bin/chromium is missing).
# If it cannot be installed, the browser tests fail with a message saying so.
browser:
	bash scripts/install-browser || echo "warning: chromium could not be installed; tests/test_app_browser.py will fail" >&2

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) browser
	$(VENV)/bin/python benchmarks/bench_forecast.py
	$(VENV)/bin/python benchmarks/bench_app.py

bench-population: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_population.py

# Simulation-based calibration of the population fit (~11 min on 2 cores; README, section SBC).
bench-sbc: $(STAMP)
	$(VENV)/bin/asuc-bayes sbc --replicates 50 --subjects 36 --method full --workers 2 --seed 1 --out benchmarks/sbc

# SBC of the default (marginal) fit (~50 min on the 2-core machine)
bench-sbc-marginal: $(STAMP)
	$(VENV)/bin/asuc-bayes sbc --replicates 30 --subjects 24 --method marginal --draws 1000 --tune 500 --chains 2 --workers 1 --seed 1 --out benchmarks/sbc-marginal

# Cost per patient and throughput for 1-1000 patients (cold, warm, workers) and population fit
# time against cohort size (~35 min on the 2-core machine; benchmarks/README.md). Options via ARGS.
bench-scale: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_scale.py $(ARGS)

# The two commands of the README's quick start. Each sets up .venv when it is missing or out of date.
VENV ?= .venv
PYTHON ?= python3
CORES ?= all

.PHONY: run test lint report clean-results

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(VENV)/.installed          ## set up, then run the whole workflow on config.yaml
	$(VENV)/bin/snakemake --cores $(CORES)
	$(VENV)/bin/snakemake --cores 1 --report results/report.html
	$(VENV)/bin/python benchmarks/aggregate_benchmarks.py results

test: $(VENV)/.installed         ## set up, then run the test suite (what CI runs)
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/snakemake --lint

clean-results:
	rm -rf results .snakemake

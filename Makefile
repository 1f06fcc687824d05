# The two commands of the README's quick start. Each sets up .venv when it is missing or out of date.
VENV ?= .venv
PYTHON ?= python3
CORES ?= all
# torch is installed first, so that this line (not pyproject.toml, which allows a range) chooses the build: 2.13.0 is
# the CPU build on a machine that has its wheel locally (CI); on a GPU machine give the build for its driver, e.g.
#   make TORCH="torch --index-url https://download.pytorch.org/whl/cu126" test
TORCH ?= torch==2.13.0

.PHONY: run test lint report clean-results

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH)
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

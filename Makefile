# kdcore — every command a newcomer needs. Each target sets up what it uses, from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The frameworks `make test-frameworks` checks kdcore against, pinned: these exact builds are the ones the
# comparisons are calibrated on. torch 2.13.0 is a CPU build (pip must never pick another torch: any other
# version would download a multi-GB CUDA build). All three share one NumPy 2.x, installed in one pip call so
# that the resolver sees every constraint at once.
TORCH      := torch==2.13.0
JAX        := jax==0.10.2 jaxlib==0.10.2
TENSORFLOW := tensorflow-cpu==2.21.0
# trl, for `kdcore check trl.experimental.gkd:GKDTrainer.generalized_jsd_loss --kind jsd` on trl's own code,
# with the heavy packages it pulls in pinned (measured: about 40 s and 450 MB installed, torch and NumPy
# untouched).
TRL        := trl==1.16.0 transformers==5.24.0 accelerate==1.16.0 datasets==5.2.0
FRAMEWORKS := $(TORCH) $(JAX) $(TENSORFLOW) $(TRL)

.PHONY: help venv demo test test-frameworks lint bench docs clean

help:
	@echo "make demo             set up .venv and run 'kdcore demo' (digits, no network, < 1 min)"
	@echo "make test             set up .venv with the [test] extras and run the whole suite"
	@echo "make test-frameworks  also install $(FRAMEWORKS) and run the framework comparisons"
	@echo "make lint             ruff"
	@echo "make bench            quick benchmarks against PyTorch (< 5 min)"
	@echo "make docs             the documentation site, tutorial executed, into build/docs/html (< 1 min)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp per extra set, so a changed pyproject.toml re-installs and an unchanged one costs nothing; the
# frameworks' stamp also depends on this Makefile, where their versions are pinned.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[plot,data]'
	touch $@

$(VENV)/.frameworks-installed: $(VENV)/.test-installed Makefile
	$(BIN)/python -m pip install --quiet $(foreach package,$(FRAMEWORKS),'$(package)')
	touch $@

venv: $(VENV)/.test-installed

demo: $(VENV)/.demo-installed
	$(BIN)/kdcore demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest

test-frameworks: $(VENV)/.frameworks-installed
	$(BIN)/python -m pytest -m frameworks tests

lint: $(VENV)/.test-installed
	$(BIN)/ruff check kdcore tests benchmarks
	$(BIN)/ruff format --check kdcore tests benchmarks

# The site: Sphinx with the pinned [docs] extra; every warning is an error; the tutorial notebook is executed
# (a failing cell fails the build); then every public name must appear in the API reference.
$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf build/docs
	@# The tutorial's kernel talks to Sphinx over local TCP, and ipykernel >= 7 logs a warning about that
	@# plain-text channel on every start; a profile for this build only keeps the kernel's log to errors.
	@mkdir -p build/docs/ipython/profile_default
	@echo 'c.IPKernelApp.log_level = "ERROR"' > build/docs/ipython/profile_default/ipython_kernel_config.py
	IPYTHONDIR=$(CURDIR)/build/docs/ipython $(BIN)/python -m sphinx -b html -W --keep-going -q docs build/docs/html
	$(BIN)/python docs/_ext/kdcore_api.py build/docs/html/api.html
	@echo "open build/docs/html/index.html"

bench: $(VENV)/.frameworks-installed
	$(BIN)/python benchmarks/bench_losses.py --quick
	$(BIN)/python benchmarks/bench_mlp.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis

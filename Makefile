# The two commands: `make study` (the whole toy study, offline, CPU) and `make test` (the test suite).
# Both create .venv and install the pinned environment on first use; later calls install nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xlcore-installed

# Nothing may download weights or data at run time (README: "Offline").
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONUNBUFFERED := 1

.PHONY: setup study test help pretrain-toy lab demo demo-screenshots browser fault-summary

help:
	@echo "make study   run the whole toy study (offline, CPU) and write results and figures"
	@echo "make test    run the test suite"
	@echo "make setup   only create .venv and install the pinned environment"
	@echo "make lab     open JupyterLab on notebooks/ with this environment as the 'xlcore' kernel"
	@echo "make demo    serve the Gradio demo on http://127.0.0.1:7860 (the toy study's seed-0 runs)"

# torch and torchvision are pinned in the lock file (2.14.1 / 0.29.1); pip takes them from the local
# wheel cache where one exists. The stamp records that the lock file was installed; it is remade only
# when the lock file or pyproject.toml change, so a second `make` installs nothing.
$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24.1"
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

study: $(STAMP)
	$(PY) -m xlcore study --preset toy

test: $(STAMP) browser
	$(PY) -m ruff check xlcore tests benchmarks demo notebooks
	$(PY) -m pytest

# The demo's browser test drives Debian's chromium (Playwright's own browser download is not used). As
# root it is installed once with apt-get; otherwise the test is skipped and says how to install it.
browser:
	@command -v chromium > /dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's chromium for the demo's browser test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; \
		else echo "chromium is missing: the browser test will be skipped (sudo apt-get install chromium)"; fi; }

demo: $(STAMP)
	$(PY) demo/app.py

# The fault suite alone, its tally copied into docs/reliability.md (block fault-summary).
fault-summary: $(STAMP)
	XLCORE_FAULT_SUMMARY=figures/tables/fault_summary.md $(PY) -m pytest -q tests/faults
	$(PY) -m xlcore docs

# The screenshots of the demo in docs/demo.md: the browser test, keeping its screenshots in figures/demo/.
demo-screenshots: $(STAMP) browser
	XLCORE_DEMO_SCREENSHOTS=figures/demo $(PY) -m pytest -q tests/test_demo_browser.py

# The notebooks' metadata and the sweep both name the kernel 'xlcore': register this environment as it
# (inside .venv, so nothing outside the project changes), then open JupyterLab on the notebooks.
lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name xlcore --display-name "Python (xlcore)" > /dev/null
	$(VENV)/bin/jupyter lab notebooks/

# Pretrain the toy backbone (hours on a CPU, minutes on a GPU; resumable). The shipped weights in
# xlcore/assets/toy_backbone/ came from this command; `make study` never runs it.
pretrain-toy: $(STAMP)
	mkdir -p papermill_runs/toy/backbone_pretrain
	$(VENV)/bin/papermill notebooks/00_pretrain_toy_backbone.ipynb \
		papermill_runs/toy/backbone_pretrain/00_pretrain_toy_backbone.ipynb --cwd .

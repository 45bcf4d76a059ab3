# `make demo`, `make demo-seg` and `make test` work on a fresh machine: each sets up .venv/ first if missing or stale.
VENV ?= .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.l2vit-setup-done
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core by default, each test file in one of them (its fixtures built once).
# The tests themselves run torch on one thread, so on a 2-core machine two processes take half the time.
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: setup test test-fast lint demo demo-seg demo-compare demo-ablation clean-venv

setup: $(SETUP_STAMP)

$(SETUP_STAMP): tools/install/setup_venv.sh requirements/constraints.txt setup.cfg setup.py pyproject.toml
	bash tools/install/setup_venv.sh $(VENV)
	touch $@

# The whole suite, slow end-to-end tests included (that is what CI runs).
test: setup
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# Everything but the tests marked slow.
test-fast: setup
	$(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# flake8 + isort with the settings in setup.cfg (the pinned versions; .pre-commit-config.yaml runs this too).
lint: setup
	$(PY) -m flake8 .
	$(PY) -m isort --check-only --diff .

demo: setup
	$(PY) tools/demo/run_detection_demo.py

# UperNet + a small L2ViT on synthetic ADE20K-layout scenes: generate, train, evaluate (mIoU), draw.
demo-seg: setup
	$(PY) tools/demo/run_segmentation_demo.py

# make demo's Mask R-CNN with L2ViT, Swin and ConvNeXt at the same backbone parameter count: FLOPs, speed, memory and
# a short training of each (tools/analysis/compare_backbones.py); about 15 minutes on 2 CPU cores.
demo-compare: setup
	$(PY) tools/demo/run_compare_demo.py

# make demo's Mask R-CNN with L2ViT and with L2ViT without LCM, 3 seeds each, and the trained models' attention and
# effective receptive fields (docs/ablation.md); about 15 minutes on 2 CPU cores.
demo-ablation: setup
	$(PY) tools/demo/run_ablation_demo.py

clean-venv:
	rm -rf $(VENV)

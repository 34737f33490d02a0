# The two set-up commands of the README:
#   make demo   creates .venv, installs what running needs (install-run), runs the main job on the
#               embedded default
#   make test   creates .venv, installs that and the development tools (install-dev), runs all tests
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, pinned to the builds this machine serves from disk;
# override with `make TORCH="torch torchvision" test` elsewhere.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DATA ?= data/synthetic
PYTEST_ARGS ?=

.PHONY: demo test install install-run install-dev lint schemas clean

# install-run: the project and its runtime dependencies (editable), what `make demo` needs.
# install-dev: that plus the [dev] extra (pytest, ruff, mypy, moto, Playwright, ModelOpt) for test and lint.
install: install-dev
install-run: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-run: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip check
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip check
	touch $@

# The main job: `automl run --policy auto` on the fast-learning recipe (configs/fast.yaml) and the
# synthetic dataset (generated when missing): the spec's own values first (run_baseline), its epochs
# and lr schedule fitted to baseline_time_share of DEMO_BUDGET (train.time_budget), then population
# based training from it (pbt, a population of one: each new trial resumes the best trial's best
# checkpoint for 2 more epochs with its training values moved by x1.2 or /1.2) until DEMO_BUDGET of
# trials is used, then the best trial's pipeline (evaluate -> ONNX export -> TensorRT engine,
# skipped without one -> deployed evaluation). bench/demo_vs_plain.py runs this against plain
# training of the same recipe in the same budget; the demo ends by printing its best beside that
# recorded plain-training reference (bench/data/demo_reference.json).
DEMO_BUDGET ?= 6m
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)
demo: install-run
	test -f $(DATA)/label_map.txt || $(VENV)/bin/rtdetr dataset synth --out $(DATA)
	$(VENV)/bin/automl run --policy auto -e configs/fast.yaml --time-budget $(DEMO_BUDGET) \
		--setting run_baseline=true --setting baseline_time_share=0.7 \
		--algorithm pbt --setting automl_population_size=1 --setting automl_eval_interval=2 \
		--name $(DEMO_NAME)
	$(PY) bench/demo_vs_plain.py --reference results/$(DEMO_NAME)

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# mypy reads its targets ([tool.mypy] packages: automl) from pyproject.toml.
lint: install-dev
	$(VENV)/bin/ruff check automl model tests bench
	$(VENV)/bin/ruff format --check automl model tests bench
	$(VENV)/bin/mypy

schemas: install-run
	$(VENV)/bin/rtdetr schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The two set-up commands of the README:
#   make demo   creates .venv, installs, runs the main job on the embedded default
#   make test   creates .venv, installs, runs all tests
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, pinned to the builds this machine serves from disk;
# override with `make TORCH="torch torchvision" test` elsewhere.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DATA ?= data/synthetic
PYTEST_ARGS ?=

.PHONY: demo test install lint schemas clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip check
	touch $@

demo: install
	test -f $(DATA)/label_map.txt || $(VENV)/bin/rtdetr dataset synth --out $(DATA)
	$(VENV)/bin/rtdetr validate -e configs/demo.yaml --action train > /dev/null
	$(VENV)/bin/rtdetr train -e configs/demo.yaml
	$(VENV)/bin/rtdetr evaluate -e configs/demo.yaml evaluate.checkpoint=results/demo/train/rtdetr_model_latest.pth

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check automl model tests bench
	$(VENV)/bin/ruff format --check automl model tests bench

schemas: install
	$(VENV)/bin/rtdetr schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

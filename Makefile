# Two entry points for a fresh machine: `make demo` (main job) and `make test` (the suite).
# Both create .venv and install everything from nothing. torch and torchvision are installed
# first at the tested releases; override with `make TORCH_SPEC="torch>=2.15 torchvision" ...`
# or TORCH_SPEC= to keep the torch that your Python already has (then create the venv with VENV_FLAGS=--system-site-packages).
PYTHON ?= python3.11
VENV ?= .venv
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q $(foreach spec,$(TORCH_SPEC),"$(spec)"); fi
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hmlearn demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

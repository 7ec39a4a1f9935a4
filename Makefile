# Two commands for a newcomer:  `make demo`  and  `make test`.
# Each creates .venv on first use and installs what it needs (the CPU build of torch first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/demo/build_teacher.py
	$(PY) examples/run_distill.py examples/configs/demo_sl.yaml

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf outputs examples/demo/teacher .pytest_cache

# regbench: `make benchmark` and `make test` are all a newcomer needs.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
PROFILE  ?= cpu
OUT      ?= runs/$(PROFILE)
ARGS     ?=
RETRAIN  ?= 0
STAMP    := $(VENV)/.installed

.PHONY: install benchmark test smoke perf train-release clean

install: $(STAMP)

# torch is installed first, pinned, so pip takes the build that lies on disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

benchmark: install
	$(PY) -m benchmark.run --multirun experiment=default profile=$(PROFILE) out=$(abspath $(OUT)) retrain=$(RETRAIN) $(ARGS)
	@echo "leaderboard: $(abspath $(OUT))/leaderboard.md"

smoke:
	$(MAKE) benchmark PROFILE=smoke OUT=$(OUT)

test: install
	$(PY) -m pytest -q tests

# speed: benchmark vs reference solves, training throughput, smoke sweep time
perf: install
	$(PY) -m benchmark.perf out=$(abspath $(OUT)) $(ARGS)
	@echo "perf: $(abspath $(OUT))/perf.md"

train-release: install
	$(PY) -m scripts.train_release $(ARGS)

clean:
	rm -rf runs .cache

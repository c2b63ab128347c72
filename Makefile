# regbench: `make benchmark` and `make test` are all a newcomer needs.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
PROFILE  ?= cpu
# not ?=: an OUT left in the environment (a common name) must not redirect the runs; OUT=dir on the command line does
OUT       = runs/$(PROFILE)
ARGS     ?=
RETRAIN  ?= 0
LOGGER   ?= wandb
RESULTS  ?=
STAMP    := $(VENV)/.installed

.PHONY: install benchmark leaderboard test smoke perf train-release clean

install: $(STAMP)

# torch is installed first, pinned, so pip takes the build that lies on disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# W&B runs offline into OUT/wandb unless you are logged in (LOGGER=none: no W&B).
benchmark: install
	$(PY) -m benchmark.run --multirun experiment=default profile=$(PROFILE) out=$(abspath $(OUT)) retrain=$(RETRAIN) logger=$(LOGGER) $(ARGS)
	@echo "leaderboard: $(abspath $(OUT))/leaderboard.md"
	$(PY) -m benchmark.report $(abspath $(OUT))

# Merge sweeps: make leaderboard RESULTS="runs/cpu runs/other" [OUT=runs/leaderboard]
LEADERBOARD_OUT = $(if $(filter file,$(origin OUT)),runs/leaderboard,$(OUT))
ifneq ($(filter leaderboard,$(MAKECMDGOALS)),)
ifeq ($(strip $(RESULTS)),)
$(error usage: make leaderboard RESULTS="runs/cpu runs/other" [OUT=runs/leaderboard])
endif
endif
leaderboard: install
	$(PY) -m benchmark.report $(abspath $(RESULTS)) --out $(abspath $(LEADERBOARD_OUT))

smoke:
	$(MAKE) benchmark PROFILE=smoke

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

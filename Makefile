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

.PHONY: install benchmark leaderboard test test-slow lint smoke perf train-release results clean

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
	$(VENV)/bin/regbench run --multirun experiment=default profile=$(PROFILE) out=$(abspath $(OUT)) retrain=$(RETRAIN) logger=$(LOGGER) $(ARGS)
	@echo "leaderboard: $(abspath $(OUT))/leaderboard.md"
	$(VENV)/bin/regbench report $(abspath $(OUT))

# Merge sweeps: make leaderboard RESULTS="runs/cpu runs/other" [OUT=runs/leaderboard]
LEADERBOARD_OUT = $(if $(filter file,$(origin OUT)),runs/leaderboard,$(OUT))
ifneq ($(filter leaderboard,$(MAKECMDGOALS)),)
ifeq ($(strip $(RESULTS)),)
$(error usage: make leaderboard RESULTS="runs/cpu runs/other" [OUT=runs/leaderboard])
endif
endif
leaderboard: install
	$(VENV)/bin/regbench report $(abspath $(RESULTS)) --out $(abspath $(LEADERBOARD_OUT))

smoke:
	$(MAKE) benchmark PROFILE=smoke

# the fast tier (what a change must keep green, under 10 minutes on 2 cores); test-slow: the rest
test: install
	$(VENV)/bin/pytest -q tests -m "not slow"

test-slow: install
	$(VENV)/bin/pytest -q tests -m slow

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# speed: benchmark vs reference solves, training throughput, smoke sweep time
perf: install
	$(VENV)/bin/regbench perf out=$(abspath $(OUT)) $(ARGS)
	@echo "perf: $(abspath $(OUT))/perf.md"

train-release: install
	$(VENV)/bin/regbench train-release $(ARGS)

# every published number: rerun the published experiments (released weights) and rewrite results/
results: install
	$(VENV)/bin/regbench release $(ARGS)

clean:
	rm -rf runs .cache

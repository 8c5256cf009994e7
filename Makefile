# Every target creates .venv and installs gru-lab itself: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
IMDB   ?= ../shared/data/aclImdb_v1_labeled.tar.gz
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install install-peers demo imdb imdb-files compare compare-imdb sweep tune report bench bench-quick gpu-check test test-slow lint docs clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,ray,parquet,tune,mlflow,tensorboard]'
	$(BIN)/python -m gru_lab.rnn.compiled  # the compiled loops (gru-lab runs the fused TensorFlow loops where no C++ compiler is)
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install gru-lab (the versions in constraints.txt) with the test, ray, parquet, mlflow and tensorboard extras

install-peers: $(STAMP)  ## add the peers extra for `make bench`'s PyTorch rows: torch 2.13.0, CPU build (not needed by the tests or CI)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,ray,peers]'

demo: $(STAMP)  ## train the embedded default (synthetic, no download)
	$(BIN)/gru-lab train

imdb: $(STAMP)  ## the IMDB tutorial configs (GRU, its literal recipe, stacked GRU, the tips lecture's model); long on CPU
	for c in imdb_gru imdb_gru_literal imdb_stacked_gru imdb_bigru_tips; do \
	  GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/gru-lab train configs/$$c.yaml || exit $$?; done

imdb-files: $(STAMP)  ## unpack the IMDB archive into data/aclImdb and write data/imdb_{train,test}.tsv (for configs/imdb_text_*.yaml)
	test -d data/aclImdb || tar xzf $${GRU_LAB_IMDB:-$(IMDB)} -C data
	$(BIN)/python data/imdb_tables.py data/aclImdb

compare: $(STAMP)  ## compare rnn, lstm and gru on the embedded synthetic default (adding problem; a few minutes on 2 CPU cores)
	$(BIN)/gru-lab compare rnn lstm gru

compare-imdb: $(STAMP)  ## compare rnn, lstm and gru on IMDB (configs/imdb_compare.yaml, 3 seeds; long on CPU)
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/gru-lab compare rnn lstm gru --config configs/imdb_compare.yaml --seeds 3

sweep: $(STAMP)  ## a 2x2-point, 2-seed grid sweep of the adding problem on 2 worker processes (configs/adding_sweep.yaml; a few minutes)
	$(BIN)/gru-lab sweep configs/adding_sweep.yaml

tune: $(STAMP)  ## a quick Optuna search (8 trials, Hyperband pruning, 2 workers) on the adding problem (configs/adding_tune.yaml; a few minutes)
	$(BIN)/gru-lab tune configs/adding_tune.yaml

report: $(STAMP)  ## one leaderboard of every run under results/ (results/leaderboard.csv and .md)
	$(BIN)/gru-lab report results

bench: $(STAMP)  ## gru-lab vs the plain Keras baseline and PyTorch (make install-peers) on the IMDB GRU tutorial's workload, rnn/lstm/gru, plus gru-lab with the padding masked and on the masked recipe; each variant in a fresh process
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/gru-lab bench --isolate --peers torch --recipe configs/imdb_gru_masked.yaml --recipe configs/imdb_gru.yaml

bench-quick: $(STAMP)  ## the same bench on 2,000 reviews and 2 epochs, GRU only (checks the bench, not the speed)
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/gru-lab bench --quick --cells gru --peers torch --recipe configs/imdb_gru.yaml

.PHONY: bench-sizes bench-sizes-full bench-sizes-quick
bench-sizes: $(STAMP)  ## throughput over a grid of units x steps x batch, rnn/lstm/gru, token and real inputs: gru-lab vs Keras and PyTorch, ratio table and heat maps (reduced grid, ~20 min on 2 idle cores; GRU_LAB_ISA=avx2 caps the ISA)
	$(BIN)/gru-lab bench --sizes --peers torch

bench-sizes-full: $(STAMP)  ## the same over the full grid (18 sizes; long)
	$(BIN)/gru-lab bench --sizes --full --peers torch

bench-sizes-quick: $(STAMP)  ## the same on 4 small sizes, GRU only (checks the bench, not the speed)
	$(BIN)/gru-lab bench --sizes --quick --cells gru --peers torch

gpu-check: $(STAMP)  ## on a GPU machine: one epoch of the literal IMDB recipe and of imdb_compare's cells, on the GPU and on the CPU; which kernel ran (results/gpu-check/)
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/gru-lab gpu-check configs/imdb_gru_literal.yaml --compare configs/imdb_compare.yaml

# make test spreads the default tier over one pytest-xdist worker a core, at most 4 (each worker imports TensorFlow and
# holds its own models: memory, not cores, bounds a big machine); whole test files go to one worker (loadfile), so a
# module's shared training runs once. TEST_WORKERS=0 runs it in one process; `python -m pytest tests/x.py -k y`
# stays serial (no worker start-up).
TEST_WORKERS ?= auto
test: $(STAMP)  ## the default tests, one worker a core up to 4 (TEST_WORKERS=0: one process; IMDB tests use the real archive when present)
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile

test-slow: $(STAMP)  ## the tests marked slow: process kills, Ray clusters, long runs
	GRU_LAB_IMDB=$${GRU_LAB_IMDB:-$(IMDB)} $(BIN)/python -m pytest -m slow

lint: $(STAMP)  ## static checks (ruff, configured in pyproject.toml)
	$(BIN)/ruff check gru_lab tests

docs: $(STAMP)  ## regenerate docs/configuration.md from the config schema
	$(BIN)/python -m gru_lab.config.reference > docs/configuration.md

clean-venv:  ## remove .venv
	rm -rf $(VENV)

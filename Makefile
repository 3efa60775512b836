# kexue — two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
KEXUE_DATA ?= $(abspath ../shared/data)
export KEXUE_DATA
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench clean

$(BIN)/.kexue-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch: a plain `torch` would pull a multi-gigabyte CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.kexue-installed

DEMO_RUN := runs/demo-sts-cosent

# The demo starts afresh each time (a kept run folder would need --resume).
demo: install
	rm -rf $(DEMO_RUN)
	$(BIN)/kexue train sts --model minilm --data stsb_en --loss cosent --pooling last-avg --epochs 1 \
		--output $(DEMO_RUN)

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

bench: install
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/encoder_speed.py
	$(BIN)/python bench/sts.py --part en
	$(BIN)/python bench/sts.py --part zh
	$(BIN)/python bench/training.py
	$(BIN)/python bench/extraction.py

clean:
	rm -rf $(VENV) runs .pytest_cache

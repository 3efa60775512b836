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

# The demo starts afresh each time (--overwrite replaces the kept run folder): one epoch of CoSENT on STS-B with
# the defaults of `kexue train sts`, dev evaluated every 45 of the 180 steps, then zero-shot vs fine-tuned on dev
# and test, the dev curve and the wall time (bench/demo_report.py; it fails if test does not beat zero-shot).
# bf16 autocast: same quality as fp32 on STS-B and ~1.6x faster on CPUs with bf16 instructions (docs/RESULTS.md).
demo: install
	@start=$$(date +%s); \
	$(BIN)/kexue train sts --model minilm --data stsb_en --loss cosent --pooling last-avg --epochs 1 \
		--precision bf16 --eval-every 45 --overwrite --output $(DEMO_RUN) && \
	$(BIN)/python bench/demo_report.py $(DEMO_RUN) $$start

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

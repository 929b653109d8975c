# All set-up lives in .venv at the repo root. Every step is skipped when what
# it installs is already importable, so re-running is fast.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip
ARCH   := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH_PKGS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PKGS := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: setup test demo bench clean-venv

setup: $(VENV)/.mmkd-installed

$(VPY):
	$(PYTHON) -m venv $(VENV)

# torch + torchvision: keep whatever working pair the venv already has.
$(VENV)/.torch-ok: | $(VPY)
	$(PIP) install -q --upgrade pip "setuptools>=77,<81" wheel
	$(VPY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install $(TORCH_PKGS)
	touch $@

# mmcv 2.1.0 has only an sdist; tools/build_mmcv.sh builds it with its C++
# ops (patched for torch's C++20 headers) and caches the wheel per torch version.
$(VENV)/.mmcv-ok: $(VENV)/.torch-ok tools/build_mmcv.sh
	$(VPY) -c "import mmcv.ops" 2>/dev/null || bash tools/build_mmcv.sh $(VPY)
	touch $@

$(VENV)/.mmkd-installed: $(VENV)/.mmcv-ok pyproject.toml
	$(PIP) install -e ".[tests,mim]"
	$(VPY) -c "import mmkd, mmdet, mmseg, mmpretrain, mmcv.ops"
	touch $@

test: setup
	$(VPY) -m pytest -q tests

bench: setup
	$(VPY) bench/losses.py
	$(VPY) bench/det_step.py
	$(VPY) bench/det_step.py --model retinanet
	$(VPY) bench/det_step.py --model dino
	$(VPY) bench/cls_step.py
	$(VPY) bench/seg_step.py
	$(VPY) bench/schedule_step.py
	$(VPY) bench/teacher_precision.py

# DEMO_ARGS, e.g. "--seeds 0 1" or "--force", pass through to tools/run_demo.py.
demo: setup
	$(VPY) tools/run_demo.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)

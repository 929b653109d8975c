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

# mmcv 2.1.0 has only an sdist: build it with its C++ ops against our torch.
# setup.py imports pkg_resources, hence no build isolation and setuptools<81.
$(VENV)/.mmcv-ok: $(VENV)/.torch-ok
	$(VPY) -c "import mmcv.ops" 2>/dev/null || { \
	  $(PIP) install -q ninja psutil packaging "setuptools>=77,<81" && \
	  MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) $(PIP) install --no-build-isolation mmcv==2.1.0 && \
	  $(VPY) -c "import mmcv.ops" 2>/dev/null || { \
	    echo "mmcv ops do not load (stale wheel cache after a torch change?): rebuilding"; \
	    MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) $(PIP) install --no-build-isolation --no-cache-dir --force-reinstall --no-deps mmcv==2.1.0; }; }
	$(VPY) -c "import mmcv.ops"
	touch $@

$(VENV)/.mmkd-installed: $(VENV)/.mmcv-ok pyproject.toml
	$(PIP) install -e ".[tests]"
	$(VPY) -c "import mmkd, mmdet, mmseg, mmpretrain, mmcv.ops"
	touch $@

test: setup
	$(VPY) -m pytest -q tests

bench: setup
	$(VPY) bench/losses.py

demo: setup
	@echo "make demo arrives with the demo issue (#4): nothing to run yet." && exit 1

clean-venv:
	rm -rf $(VENV)

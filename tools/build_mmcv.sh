#!/usr/bin/env bash
# Install mmcv 2.1.0 with its C++ ops into the given Python's environment.
#
# Only mmcv's sdist exists for 2.1.0. Its setup.py hard-codes -std=c++17 (and
# c++14 in places), but torch >= 2.10's headers need C++20, so we patch the
# flag before building. setup.py imports pkg_resources, hence
# --no-build-isolation with setuptools<81. The built wheel is kept in
# $MMKD_WHEEL_CACHE (default ~/.cache/mmkd), keyed by torch version, so later
# set-ups (and CI on the same machine) install it in seconds.
set -euo pipefail
PY=${1:?usage: build_mmcv.sh PYTHON}
VERSION=2.1.0
TORCH=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
CACHE=${MMKD_WHEEL_CACHE:-$HOME/.cache/mmkd}/mmcv-$VERSION-torch$TORCH-$(uname -m)
mkdir -p "$CACHE"
if ! ls "$CACHE"/mmcv-*.whl >/dev/null 2>&1; then
  echo "Building mmcv $VERSION with ops against torch $TORCH (about 11 minutes on 2 cores)..."
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip install -q ninja psutil packaging "setuptools>=77,<81" wheel
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$work" "mmcv==$VERSION"
  tar xzf "$work/mmcv-$VERSION.tar.gz" -C "$work"
  sed -i 's/-std=c++1[47]/-std=c++20/g' "$work/mmcv-$VERSION/setup.py"
  MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$CACHE" "$work/mmcv-$VERSION"
fi
"$PY" -m pip install --no-deps --force-reinstall "$CACHE"/mmcv-*.whl
"$PY" -m pip install -q addict mmengine "opencv-python>=3" pyyaml yapf packaging
"$PY" -c "import mmcv.ops; print('mmcv', mmcv.__version__, 'ops OK')"

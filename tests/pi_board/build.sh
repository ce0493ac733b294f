#!/usr/bin/env bash
# Build (once) an emulated Raspberry Pi software stack: a Debian bookworm arm64 root with Python 3.11, numpy
# and the aarch64 ai-edge-litert wheel, run through Debian's qemu-aarch64-static (no binfmt_misc needed).
#   tests/pi_board/build.sh [CACHE]        (default $EDGEML_PI_CACHE or ~/.cache/edgeml-pi-board)
# Prints the path of a "board python" wrapper: `qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11`.
# Needs: debootstrap, qemu-user-static (apt), the Debian mirror and PyPI. Latency through qemu is EMULATED.
set -euo pipefail
CACHE="${1:-${EDGEML_PI_CACHE:-$HOME/.cache/edgeml-pi-board}}"
LITERT="${EDGEML_PI_LITERT:-ai-edge-litert==1.4.0}"
MIRROR="${EDGEML_PI_MIRROR:-http://deb.debian.org/debian}"
PY="${PYTHON:-python3}"
ROOT="$CACHE/root"
STAMP="$CACHE/.built"
if [ -f "$STAMP" ] && [ -x "$CACHE/python" ]; then echo "$CACHE/python"; exit 0; fi
QEMU="$(command -v qemu-aarch64-static || true)"
DEBOOTSTRAP="$(command -v debootstrap || echo /usr/sbin/debootstrap)"
if [ -z "$QEMU" ] || [ ! -x "$DEBOOTSTRAP" ]; then
  echo "pi-board: needs debootstrap and qemu-user-static (apt-get install debootstrap qemu-user-static)" >&2
  exit 3
fi
mkdir -p "$CACHE"
rm -rf "$ROOT" "$CACHE/wheels"
echo "pi-board: debootstrap --foreign arm64 bookworm (minbase + python3, python3-numpy) into $ROOT" >&2
"$DEBOOTSTRAP" --foreign --arch=arm64 --variant=minbase --include=python3,python3-numpy bookworm "$ROOT" "$MIRROR" >&2
# binfmt_misc is not available here, so the second stage cannot run: unpack every downloaded .deb instead
for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
LIB="$ROOT/usr/lib/aarch64-linux-gnu"
ln -sf blas/libblas.so.3 "$LIB/libblas.so.3"
ln -sf lapack/liblapack.so.3 "$LIB/liblapack.so.3"
echo "pi-board: downloading the aarch64 $LITERT wheel" >&2
"$PY" -m pip download --quiet --no-deps --platform manylinux_2_17_aarch64 --only-binary=:all: --python-version 311 \
  -d "$CACHE/wheels" "$LITERT" >&2
SITE="$ROOT/usr/local/lib/python3.11/dist-packages"
mkdir -p "$SITE"
for whl in "$CACHE"/wheels/*.whl; do "$PY" -m zipfile -e "$whl" "$SITE"; done
cat > "$CACHE/python" <<WRAP
#!/bin/sh
# an emulated Raspberry Pi (arm64 Debian bookworm) Python: latency measured through qemu is EMULATED
EDGEML_EMULATED="qemu-aarch64-static, Debian bookworm arm64 root" exec "$QEMU" -L "$ROOT" "$ROOT/usr/bin/python3.11" "\$@"
WRAP
chmod 755 "$CACHE/python"
"$CACHE/python" -c "import numpy, ai_edge_litert.interpreter as i, platform; print('pi-board:', platform.machine(), 'numpy', numpy.__version__)" >&2
touch "$STAMP"
echo "$CACHE/python"

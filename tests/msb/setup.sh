#!/usr/bin/env bash
# Gets a real microsandbox release for the tests that use it as an oracle,
# once, into target/msb-<release> (a second run downloads nothing):
#   usage: setup.sh [0.6.18 | 0.7.0 | 0.7.11]   (default 0.7.11)
#   - the PyPI wheel microsandbox==<release>, checked against its pinned
#     SHA-256, unpacked (it ships bin/msb and libkrunfw);
#   - Debian's busybox-static, pinned, made into a one-layer OCI image
#     (oci.py) and loaded by msb into a template home the tests copy, with
#     one sandbox, `seed`, that msb created (about 20 s, once).
# Prints `msb=<path>` and `home=<template home>`. Exits non-zero, saying
# why on stderr, when anything is missing: the tests then fail under CI=1.
# Safe to run concurrently (one flock on the cache).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
release="${1:-0.7.11}"
case "$release" in
    0.6.18) wheel_sha256=2b35dd7ff475465af84f73443c5de117433d07e8a660e53625d8c810d5d6d9c1 ;;
    0.7.0) wheel_sha256=848eab6e23b3bc168934b3093baafe26b086348d2914ae710900884e7bb74470 ;;
    0.7.11) wheel_sha256=65f1e4bbf8d721c9f7f557329fb6c8cf41f554c1c6942eac8b941198fa283fe0 ;;
    *) echo "setup: no pinned wheel for microsandbox $release (0.6.18, 0.7.0, 0.7.11)" >&2; exit 2 ;;
esac
cache="${CARGO_TARGET_DIR:-$root/target}/msb-$release"
wheel=microsandbox-$release-cp310-abi3-manylinux_2_28_x86_64.whl
busybox_version=1:1.35.0-4+deb12u1+b1
busybox_sha256=3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -x 9

msb="$cache/wheel/microsandbox/_bundled/bin/msb"
home="$cache/home"
if [ -x "$msb" ] && [ -f "$home/.ready" ]; then
    echo "msb=$msb"
    echo "home=$home"
    exit 0
fi

need() { command -v "$1" >/dev/null || { echo "setup: $1 is not installed ($2)" >&2; exit 1; }; }
need python3 "the wheel is fetched with pip and the image built with python3"
need dpkg-deb "busybox-static comes from Debian"

if [ ! -x "$msb" ]; then
    rm -rf "$cache/dl" "$cache/wheel"
    mkdir -p "$cache/dl"
    python3 -m pip download --quiet --no-deps --only-binary :all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 \
        -d "$cache/dl" "microsandbox==$release" >&2
    got="$(sha256sum "$cache/dl/$wheel" | cut -d' ' -f1)"
    if [ "$got" != "$wheel_sha256" ]; then
        echo "setup: $wheel has SHA-256 $got, not the pinned $wheel_sha256" >&2
        exit 1
    fi
    python3 -m zipfile -e "$cache/dl/$wheel" "$cache/wheel"
    chmod +x "$msb"
fi
"$msb" --version | grep -qx "msb $release" || { echo "setup: $msb is not msb $release" >&2; exit 1; }

deb="$cache/busybox-static.deb"
if [ ! -f "$deb" ]; then
    rm -rf "$cache/debdl"
    mkdir -p "$cache/debdl"
    (cd "$cache/debdl" && { apt-get download -q "busybox-static=$busybox_version" >&2 \
        || { apt-get update -qq >&2 && apt-get download -q "busybox-static=$busybox_version" >&2; }; })
    got="$(sha256sum "$cache"/debdl/busybox-static_*.deb | cut -d' ' -f1)"
    if [ "$got" != "$busybox_sha256" ]; then
        echo "setup: busybox-static $busybox_version has SHA-256 $got, not the pinned $busybox_sha256" >&2
        exit 1
    fi
    mv "$cache"/debdl/busybox-static_*.deb "$deb"
fi

rm -rf "$cache/busybox" "$home"
dpkg-deb -x "$deb" "$cache/busybox"
python3 "$here/oci.py" "$cache/busybox/bin/busybox" "$cache/busybox.oci.tar"
MSB_HOME="$home" "$msb" load -i "$cache/busybox.oci.tar" -t local/busybox:latest >&2
MSB_HOME="$home" "$msb" image ls 2>&1 | grep -q 'local/busybox' \
    || { echo "setup: msb did not list local/busybox after loading it" >&2; exit 1; }
# One real sandbox, so the tests copy a config msb wrote. Its VM cannot boot
# here (KVM_EXIT_INTERNAL_ERROR), so create fails after ~20 s and the row
# ends Stopped: that is all the tests need.
created_at=$(date +%s)
MSB_HOME="$home" timeout 120 "$msb" create --name seed local/busybox:latest >/dev/null 2>&1 || true
MSB_HOME="$home" "$msb" inspect seed >/dev/null \
    || { echo "setup: msb create left no sandbox named seed" >&2; exit 1; }
# msb's create ran its own maintenance, which records a completed sweep
# in the catalog's lease: a copy made within 30 s of it would have a plain
# `sandbox-sweep sweep` skip as recent, as it should. The tests copy a
# home whose last sweep is older, as users' homes are.
wait=$((created_at + 31 - $(date +%s)))
if [ "$wait" -gt 0 ]; then sleep "$wait"; fi
: > "$home/.ready"
echo "msb=$msb"
echo "home=$home"

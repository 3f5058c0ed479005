#!/usr/bin/env bash
# Installs everything pollnet needs on a fresh Debian 12 machine: the system packages
# (compiler, BPF toolchain, kernel peers for the interop tests) and the Python package
# itself, editable, with its test extras. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential python3-dev pkg-config
  clang llvm libclang-rt-14-dev gcc-multilib libxdp-dev libbpf-dev xdp-tools bpftool
  iproute2 ethtool tcpdump tshark sockperf iperf3 hping3 nftables
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "install: apt packages: ${missing[*]}" >&2
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer for it.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install: not root, cannot install apt packages: ${missing[*]}" >&2
    echo "install: the tests that need them will skip with that reason" >&2
  fi
fi

PY=${PYTHON:-python3}
$PY -m pip install -q -e ".[test]"

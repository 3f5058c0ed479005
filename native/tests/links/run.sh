#!/usr/bin/env bash
# The real links' C tests (af_packet, af_xdp, rtnetlink) against the kernel, inside two
# private network namespaces joined by a veth pair: 10.213.7.1 (A, the kernel's address
# where the link runs), 10.213.7.2 (B, the kernel peer), 10.213.7.3 (owned by the link).
# Needs root; without it (or without netns) it prints why and counts one skip.
#   native/tests/links/run.sh [--asan] [--only NAME[,NAME...]]
# --asan runs the same tests built with AddressSanitizer and UBSan.
set -u
here=$(cd "$(dirname "$0")" && pwd)
target=linktest
if [ "${1:-}" = "--asan" ]; then
  target=linktest-asan
  shift
fi

# Exit 77, the automake "skipped" code: scripts/test.sh reports the stage as SKIPPED with
# the reason (written to $STAGE_SKIP_FILE when it is set), never as ok.
skip() {
  echo "links: skipped: $1" >&2
  echo "links: 0 passed, 0 failed, 1 skipped"
  if [ -n "${STAGE_SKIP_FILE:-}" ]; then echo "$1" > "$STAGE_SKIP_FILE"; fi
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "not root (network namespaces and AF_PACKET/AF_XDP need root)"
command -v ip >/dev/null || skip "no ip command (apt-get install iproute2)"

make -s -C "$here" "$(cd "$here/../.." && pwd)/build/links/$target" ||
  { echo "links: build failed" >&2; exit 1; }
bin=$(cd "$here/../.." && pwd)/build/links/$target

A="pnlink$$a"
B="pnlink$$b"
cleanup() {
  ip -n "$A" link set dev veth0 xdp off 2>/dev/null
  ip netns del "$A" 2>/dev/null
  ip netns del "$B" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$A" 2>/dev/null || skip "cannot create a network namespace"
ip netns add "$B" || exit 1
ip link add veth0 netns "$A" type veth peer name veth0 netns "$B" || exit 1
for ns in "$A" "$B"; do
  ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' 
  ip -n "$ns" link set lo up
done
ip -n "$A" addr add 10.213.7.1/24 dev veth0
ip -n "$B" addr add 10.213.7.2/24 dev veth0
ip -n "$A" link set veth0 up
ip -n "$B" link set veth0 up

timeout 300 ip netns exec "$A" ${PN_WRAP:-} "$bin" --ns-b "$B" --if veth0 \
  --ip-a 10.213.7.1 --ip-b 10.213.7.2 --own 10.213.7.3 "$@"

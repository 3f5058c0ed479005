#!/bin/sh
# Builds libzf_shim.so (the TCPDirect look-alike for tests) into OUTDIR (default: build/).
# The Python test fixture runs this same script, so the flags live only here.
# EXTRA_CFLAGS adds flags, e.g. EXTRA_CFLAGS="-fsanitize=address,undefined".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
mkdir -p "$out"
${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -shared ${EXTRA_CFLAGS:-} \
  -I"$here/include" -o "$out/libzf_shim.so.tmp.$$" "$here/zf_shim.c"
mv -f "$out/libzf_shim.so.tmp.$$" "$out/libzf_shim.so"
echo "$out/libzf_shim.so"

#!/usr/bin/env bash
# Join the parts that benchmarks/gpu_stage.sh wrote and unpack them, once: a rerun finds the
# marker of the same payload and skips the work (seconds, not the ~15 s of a full unpack).
#   bash benchmarks/gpu_unpack.sh .device /tmp/gpu-visit/stage
# leaves DEST/site (first on PYTHONPATH) and DEST/jigsaw (train.csv, test_labeled.csv).
# Exit 3 when a part is missing or belongs to another staging: carry the parts again.
set -euo pipefail
[ $# = 2 ] || { echo "usage: bash benchmarks/gpu_unpack.sh PARTS_DIR DEST" >&2; exit 2; }
parts=$1 dest=$2
manifest=$(ls "$parts"/part*/manifest 2> /dev/null | head -1)
[ -n "$manifest" ] || { echo "gpu_unpack: no part*/manifest under $parts: carry the parts" >&2; exit 3; }
# shellcheck source=/dev/null
. "$manifest"  # total=N sha256=... bytes=...
if [ -f "$dest/.unpacked-$sha256" ]; then
  echo "gpu_unpack: $dest already holds payload ${sha256:0:12}; nothing to do"
  exit 0
fi
missing=()
for i in $(seq -f '%02g' 1 "$total"); do
  grep -qx "sha256=$sha256" "$parts/part$i/manifest" 2> /dev/null && [ -f "$parts/part$i/data" ] \
    || missing+=("part$i")
done
[ ${#missing[@]} = 0 ] || {
  echo "gpu_unpack: ${missing[*]} of $total not carried (or from another staging): carry them" >&2
  exit 3
}
files=()
for i in $(seq -f '%02g' 1 "$total"); do files+=("$parts/part$i/data"); done
got=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
[ "$got" = "$sha256" ] || { echo "gpu_unpack: the joined parts are damaged (sha256 $got)" >&2; exit 3; }
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# tarfile and lzma are in every Python: no xz program is assumed on the machine.
cat "${files[@]}" | python3 -c '
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|xz") as tar:
    tar.extractall(sys.argv[1], filter="data")
' "$dest.tmp"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
touch "$dest/.unpacked-$sha256"
echo "gpu_unpack: unpacked $bytes bytes from $total parts into $dest"

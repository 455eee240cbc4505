"""Benchmark the scorer against PyTorch (throughput), on labelled data (quality), and its peak
memory on large files (memory), and report.

python -m benchmarks all --model artifacts/model --onnx artifacts/onnx --device cpu
python -m benchmarks memory --onnx artifacts/onnx --row-counts 100000,1000000
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from benchmarks.memory import BYTES_PER_ROW
from common.cli import parser, positive_int, run_stage, setup_logging
from common.variants import VARIANTS

COUNT = {"type": positive_int, "default": None}
MEMORY_ROWS = [100_000, 1_000_000, 10_000_000]


def row_counts(text: str) -> list[int]:
    """A comma list of positive whole numbers, e.g. 100000,1000000."""
    return [positive_int(part.strip()) for part in text.split(",")]


# Every argument: its name or flag and add_argument's keyword arguments.
OPTIONS = [
    ("command", {"nargs": "?", "choices": ["throughput", "quality", "all", "memory"],
     "default": "all", "help": "what to measure; memory: the peak RSS of python -m score on "
     "generated CSVs (--onnx, --row-counts, --variant, --out, --seed; the others do not apply)"}),
    ("--model", {"dest": "model_dir", "metavar": "MODEL", "type": Path, "default":
     Path("artifacts/model"), "help": "the training stage's folder (the PyTorch model)"}),
    ("--onnx", {"dest": "onnx_dir", "metavar": "ONNX", "type": Path, "default":
     Path("artifacts/onnx"), "help": "the export stage's folder (the onnxruntime variants)"}),
    ("--bert-base", {"action": "store_true", "help": "instead of --model/--onnx, build a "
     "random-weight bert-base-sized model (BertConfig()) and export it to a temporary folder "
     "(GPU speed targets; no quality)"}),
    ("--device", {"choices": ["auto", "cpu", "cuda"], "default": "auto",
     "help": "auto = CUDA when torch sees one"}),
    ("--rows", {**COUNT, "help": "texts to time (default: 2000 on CPU, 20000 on CUDA)"}),
    ("--repeats", {"type": positive_int, "default": 3, "help": "timed runs per engine"}),
    ("--batch-size", {**COUNT,
     "help": "rows per batch for every engine, as the scorer's --batch-size (default: 64 on "
     "CPU, 256 on CUDA)"}),
    ("--threads", {**COUNT,
     "help": "CPU threads for torch and onnxruntime (default: all usable cores)"}),
    ("--texts", {"type": Path, "default": None, "help": "CSV of comments to time "
     "(default: generated texts with real comments' lengths)"}),
    ("--text-column", {"default": "comment_text",
     "help": "text column of --texts and --eval-data"}),
    ("--eval-data", {"type": Path, "default": None,
     "help": "labelled CSV for ROC-AUC (without it, quality is skipped)"}),
    ("--eval-rows", {**COUNT, "help": "use only the first N"}),
    ("--out", {"type": Path, "default": Path("benchmarks/results"),
     "help": "results go to OUT/<machine>/: the CPU's name and key ISA "
     "(amd-epyc-avx512-vnni-bf16), or the GPU's name"}),
    ("--seed", {"type": int, "default": 0, "help": "seed of the text sample"}),
]  # fmt: skip
MEMORY_OPTIONS = [
    ("--row-counts", {"type": row_counts, "default": None, "help": "comma list of CSV sizes to "
     f"score, one run each (default: {','.join(map(str, MEMORY_ROWS))}). Each CSV is written "
     "to TMPDIR and deleted after its run, which needs about "
     f"{BYTES_PER_ROW} bytes of free disk per row of the largest count (5 GB for 10 million; "
     "checked first); 10 million rows take hours with a real model on a few cores"}),
    ("--variant", {"choices": ["auto", *VARIANTS], "default": None,
     "help": "python -m score's --variant (default: auto)"}),
]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m benchmarks",
        "Time PyTorch against each exported variant (onnxruntime; bf16 on OpenVINO) and the "
        "scorer end to end on the same texts, measure ROC-AUC on a labelled CSV, and write "
        "report.md, results.json and a chart under --out/<machine>. memory: score generated "
        "CSVs of each --row-counts size with python -m score on the CPU, each in its own "
        "process, and write its peak RSS (goal: under 1 GiB), rows/s and variant to "
        "--out/<cpu>/memory/. "
        "Example: python -m benchmarks all --device cpu --rows 2000",
        {None: dict(OPTIONS), "memory": dict(MEMORY_OPTIONS)},
    )
    args = p.parse_args(argv)
    if args.bert_base and args.command in ("quality", "memory"):
        p.error("--bert-base has random weights, so it is for throughput only")
    if args.command != "memory" and (args.row_counts or args.variant):
        p.error("--row-counts and --variant are options of the memory command")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("benchmarks")
    if args.command == "memory":
        return _memory(args)
    from benchmarks.report import summary  # heavy imports after --help and argument errors
    from benchmarks.run import run

    code, record = run_stage("benchmarks", lambda: run(**vars(args)))
    if not code:
        print(summary(record))
    return code


def _memory(args: argparse.Namespace) -> int:
    from benchmarks.memory import run_memory, summary

    options = {"row_counts": args.row_counts or MEMORY_ROWS, "variant": args.variant or "auto"}
    options |= {"onnx_dir": args.onnx_dir, "out": args.out, "seed": args.seed}
    code, record = run_stage("benchmarks", lambda: run_memory(**options))
    if not code:
        print(summary(record))
    return code


if __name__ == "__main__":
    # A kill (SIGTERM) unwinds like Ctrl-C, so the temporary folder of texts is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())

"""Benchmark the scorer against PyTorch (throughput) and on labelled data (quality), and report.

python -m benchmarks all --model artifacts/model --onnx artifacts/onnx --device cpu
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from common.cli import parser, positive_int, run_stage, setup_logging

COUNT = {"type": positive_int, "default": None}
# Every argument: its name or flag and add_argument's keyword arguments.
OPTIONS = [
    ("command", {"nargs": "?", "choices": ["throughput", "quality", "all"], "default": "all",
     "help": "what to measure"}),
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
     "help": "rows per batch for every engine (default: 64 on CPU, 256 on CUDA)"}),
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m benchmarks",
        "Time PyTorch against each exported variant (onnxruntime; bf16 on OpenVINO) and the "
        "scorer end to end on the same texts, measure ROC-AUC on a labelled CSV, and write "
        "report.md, results.json and a chart under --out/<machine>. "
        "Example: python -m benchmarks all --device cpu --rows 2000",
        {None: dict(OPTIONS)},
    )
    args = p.parse_args(argv)
    if args.bert_base and args.command == "quality":
        p.error("--bert-base has random weights, so its quality means nothing; use throughput")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("benchmarks")
    from benchmarks.report import summary  # heavy imports after --help and argument errors
    from benchmarks.run import run

    code, record = run_stage("benchmarks", lambda: run(**vars(args)))
    if not code:
        print(summary(record))
    return code


if __name__ == "__main__":
    # A kill (SIGTERM) unwinds like Ctrl-C, so the temporary folder of texts is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())

"""Benchmark the scorer against PyTorch (throughput) and on labelled data (quality), and report.

python -m benchmarks all --model artifacts/model --onnx artifacts/onnx --device cpu
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from common.cli import HelpFormatter, positive_int, run_stage, setup_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time PyTorch against each exported variant (onnxruntime; bf16 on OpenVINO) "
        "and the scorer end to end on the same real comments, measure ROC-AUC on a labelled "
        "CSV, and write report.md, results.json and a chart under --out/<machine>. "
        "Example: python -m benchmarks all --device cpu --rows 2000",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "command",
        nargs="?",
        choices=["throughput", "quality", "all"],
        default="all",
        help="what to measure",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=Path("artifacts/model"),
        help="the training stage's folder (the PyTorch model)",
    )
    p.add_argument(
        "--onnx",
        type=Path,
        default=Path("artifacts/onnx"),
        help="the export stage's folder (the onnxruntime variants)",
    )
    p.add_argument(
        "--bert-base",
        action="store_true",
        help="instead of --model/--onnx, build a random-weight bert-base-sized model "
        "(BertConfig()) and export it to a temporary folder (GPU speed targets; no quality)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto = CUDA when torch sees one",
    )
    p.add_argument(
        "--rows",
        type=positive_int,
        default=None,
        help="texts to time (default: 2000 on CPU, 20000 on CUDA)",
    )
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs per engine")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="rows per batch for every engine (default: 64 on CPU, 256 on CUDA)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch and onnxruntime (default: all usable cores)",
    )
    p.add_argument(
        "--texts",
        type=Path,
        default=None,
        help="CSV of comments to time (default: ../shared/data/jigsaw/train.csv when present, "
        "else generated texts with real comments' lengths)",
    )
    p.add_argument(
        "--text-column", default="comment_text", help="text column of --texts and --eval-data"
    )
    p.add_argument(
        "--eval-data",
        type=Path,
        default=None,
        help="labelled CSV for ROC-AUC (default: ../shared/data/jigsaw/test_labeled.csv "
        "when present)",
    )
    p.add_argument("--eval-rows", type=positive_int, default=None, help="use only the first N")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        help="results go to OUT/<machine>/: the CPU's name and key ISA "
        "(amd-epyc-avx512-vnni-bf16), or the GPU's name",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the text sample")
    args = p.parse_args(argv)
    if args.bert_base and args.command == "quality":
        p.error("--bert-base has random weights, so its quality means nothing; use throughput")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("benchmarks")
    code, record = run_stage("benchmarks", lambda: _run(args))
    if code:
        return code
    print(summary_table(record))
    return 0


def _run(args: argparse.Namespace) -> dict:
    from benchmarks.run import run  # heavy imports after --help and argument errors

    return run(
        command=args.command,
        model_dir=args.model,
        onnx_dir=args.onnx,
        bert_base=args.bert_base,
        device=args.device,
        rows=args.rows,
        repeats=args.repeats,
        batch_size=args.batch_size,
        threads=args.threads,
        texts=args.texts,
        text_column=args.text_column,
        eval_data=args.eval_data,
        eval_rows=args.eval_rows,
        out=args.out,
        seed=args.seed,
    )


def summary_table(record: dict) -> str:
    """The stdout result: one line per engine and per target."""
    from benchmarks.targets import best_pytorch

    env = record["env"]
    where = env.get("gpu") or f"{env['cpu']} ({', '.join(env['cpu_flags'])})"
    lines = [f"device {env['device']}: {where}, {env['threads']} threads"]
    speed = record.get("throughput", {}).get("engines", {})
    best = best_pytorch(speed)
    for name, r in speed.items():
        ratio = (
            "FAILED: " + r["failed"]
            if r.get("failed")
            else f"{r['rows_per_s'] / speed[best]['rows_per_s']:5.2f}x best PyTorch"
        )
        lines.append(
            f"{name:<26} {r['provider']:<5} {r['rows_per_s']:>10,.1f} rows/s  {ratio}  "
            f"({r['spread_pct']:.0f}% spread)"
        )
    for name, r in record.get("quality", {}).get("engines", {}).items():
        auc = r["roc_auc_macro"]
        lines.append(f"{name:<26} macro ROC-AUC {auc if auc is None else f'{auc:.4f}'}")
    for t in record.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target: {t['target']}: {t['measured']} ({t['goal']}) {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    # A kill (SIGTERM) unwinds like Ctrl-C, so the temporary folder of texts is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())

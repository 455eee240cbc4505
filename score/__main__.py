"""Score a CSV or Parquet file of comments with the exported ONNX model into one Parquet file,
or many files on a Ray cluster into a folder of Parquet parts.

python -m score comments.csv out.parquet
python -m score part-1.csv part-2.csv out/ --engine ray
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from common.cli import number, parser, positive_int, run_stage, setup_logging
from common.variants import VARIANTS

RAY_ONLY = ("address", "num_workers", "gpus_per_worker")  # options of --engine ray alone


def _positive_float(text: str) -> float:
    value = number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a number above 0, got {text} (for CPU workers pass --provider cpu)"
        )
    return value


SWITCH = {"action": "store_true"}
OPTIONS = {
    None: {
        "inputs": {"metavar": "input", "nargs": "+", "type": Path, "help": "CSV with a header "
                   "(UTF-8), or a .parquet file; with --engine ray also several files, or "
                   "folders (their *.csv and *.parquet files)"},
        "output": {"type": Path, "help": "Parquet file (a folder with --engine ray), written "
                   "only when scoring succeeds"},
        "--force": {**SWITCH, "help": "replace an existing output (it is kept until the new one "
                    "is complete)"},
        "--model": {"type": Path, "default": Path("artifacts/onnx"),
                    "help": "the export stage's folder"},
        "--text-column": {"default": "comment_text", "help": "column holding the comment"},
        "--id-column": {"default": "id", "help": "copied to the output as read"},
        "--no-id-column": {"dest": "id_column", "action": "store_const", "const": None,
                           "help": "the input has no id: write a 0-based `row` column instead"},
        "--provider": {"choices": ["auto", "cuda", "cpu"], "default": "auto", "help": "auto = "
                       "CUDA when onnxruntime can use it, else CPU; cuda fails if it cannot"},
        "--variant": {"choices": ["auto", *VARIANTS], "default": "auto", "help": "int8-static = "
                      "NNCF's calibrated int8, run by OpenVINO; bf16 = model.onnx run by "
                      "OpenVINO in bf16, on CPUs with avx512_bf16 or amx_bf16. auto = fp16 on "
                      "CUDA; on the CPU the first, in the order set for this kind of CPU "
                      "(docs/variants.md), that it runs faster and that export.json says is "
                      "within its fidelity limits, else optimized (score/variant_rule.py); the "
                      "summary line says which and why"},
        "--batch-size": {"type": positive_int, "help": (
            "rows per batch (default: 64 on CPU, 256 on CUDA); on the CPU a batch of long "
            "comments holds fewer rows, at most batch size x 32 tokens, so memory stays bounded"
        )},
        "--max-len": {"type": positive_int, "help": "tokens per comment (default: training's)"},
        "--chunk-rows": {"type": positive_int, "default": 50_000,
                         "help": "rows read, sorted and written at once"},
        "--threads": {
            "type": positive_int,
            "help": "onnxruntime or OpenVINO threads (default: the runtime's own); on an AMX CPU "
            "with 2 or more, OpenVINO runs two batches at once, one per half",
        },
        "--thresholds": {"action": argparse.BooleanOptionalAction, "default": False,
                         "help": "add a boolean <label>_flag column per label from the "
                         "model's thresholds.json"},
        "--encoding": {"choices": ["utf8", "utf8-lossy"], "default": "utf8", "help": "utf8-lossy "
                       "reads bytes that are not UTF-8 as U+FFFD instead of failing"},
        "--quiet": {**SWITCH, "help": "no progress bar or log lines"},
    },
    'scale-out on Ray (pip install -e ".[ray]")': {
        "--engine": {"choices": ["local", "ray"], "default": "local", "help": "local: this "
                     "process, one file; ray: Ray Data over a cluster or a local Ray instance"},
        "--address": {"help": "Ray cluster to join: auto (the one this node belongs to) or "
                      "ray://host:10001 (default: start a local Ray instance)"},
        "--num-workers": {"type": positive_int, "help": "model workers (default: one per GPU, "
                          "or one per 4 CPUs of the cluster)"},
        "--gpus-per-worker": {"type": _positive_float, "help": "GPUs each worker holds "
                              "(default: 1 when the cluster has GPUs, else 0)"},
    },
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m score",
        "Stream a CSV (or .parquet) file of comments through the exported "
        "onnxruntime model into one Parquet file: the id column as read (or a 0-based `row` "
        "column with --no-id-column), then one float32 probability per label, and with "
        "--thresholds one boolean `<label>_flag` column per label (probability >= the "
        "threshold saved at training). Rows keep their input order. "
        "Example: python -m score comments.csv out.parquet --batch-size 128. "
        "With --engine ray, several files or folders go to an output folder holding "
        "<input stem>/part-<first row>.parquet per input (see docs/scoring.md).",
        OPTIONS,
    )
    args = p.parse_args(argv)
    if args.engine == "local":
        ray_only = [f for f in RAY_ONLY if getattr(args, f)]
        if ray_only:
            p.error(f"--{ray_only[0].replace('_', '-')} needs --engine ray")
        if len(args.inputs) > 1 or args.inputs[0].is_dir():
            p.error("the local engine scores one file; pass --engine ray for several or a folder")
    return args


def _score(args: argparse.Namespace) -> dict:
    """The local engine's run(), or run_ray() with the Ray options too."""
    skip = ("inputs", "output", "model", "engine", *RAY_ONLY)
    options = {k: v for k, v in vars(args).items() if k not in skip} | {"model_dir": args.model}
    if args.engine == "ray":
        from score.ray_engine import run_ray

        ray = {k: getattr(args, k) for k in RAY_ONLY}
        return run_ray(inputs=args.inputs, output=args.output, **ray, **options)
    from score.run import run

    return run(input_path=args.inputs[0], output_path=args.output, **options)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: no partial output is left


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("score", quiet=args.quiet)
    from score.run import summary_line  # heavy imports after --help and argument errors

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code, summary = run_stage("score", lambda: _score(args))
    except KeyboardInterrupt:
        kept = "; the chunks already scored are kept: run the same command again to resume"
        print(f"score: interrupted; {args.output} was not written{kept}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        return code
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

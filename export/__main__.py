"""Export the trained model to ONNX and build its faster variants, each checked against PyTorch.

python -m export --opset 17 --eval-data labelled.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from common.cli import fraction, parser, positive_int, run_stage, setup_logging
from common.variants import VARIANTS, Limits
from export.notes import hide_library_notes
from export.quantize import ISAS

OPTIONAL = [name for name in VARIANTS if name != "fp32"]
# Names of an earlier release, kept for one more: each is read as its new form, with a notice.
RENAMED = {
    "--int8-max-diff": "--max-diff",
    "--int8-p99-diff": "--p99-diff",
    "--int8-min-agreement": "--min-flag-agreement",
    "--int8-max-auc-drop": "--max-auc-drop",
    "--int8-isa": "--target-cpu",
}
DECIDED = ("--device", "--int8-graph", "--int8-fp32", "--calibration-rows")  # take a value
SWITCHES = [f"--{flag}{name}" for name in OPTIONAL for flag in ("", "no-")]


def variant_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPTIONAL]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant {', '.join(unknown) or repr(text)}; name some of: "
            f"{', '.join(OPTIONAL)} (fp32 is always exported)"
        )
    return names


OPTIONS = {
    None: {
        "--model": {"type": Path, "default": Path("artifacts/model"),
                    "help": "the training stage's output folder"},
        "--out": {"type": Path, "default": Path("artifacts/onnx"),
                  "help": "folder for the ONNX variants"},
        "--opset": {"type": int, "default": 17, "help": "ONNX opset of the export"},
        "--variants": {"type": variant_list, "default": None, "help": "comma-separated "
                       "variants to build, each of which must pass (default: every one this "
                       f"machine can check, of {', '.join(OPTIONAL)})"},
        "--target-cpu": {"choices": ["auto", *ISAS], "default": "auto", "help": "the CPU kind "
                         "the int8 variant is quantized for (auto: this one; avx512_vnni also "
                         "suits AVX-VNNI and AMX); export on one machine, score on another kind"},
        "--eval-data": {"type": Path, "default": None, "help": "labelled CSV of your own "
                        "comments: the reduced variants are checked on its first --eval-rows "
                        "rows, and int8-static calibrates on the 300 after them"},
        "--eval-rows": {"type": positive_int, "default": 2000,
                        "help": "--eval-data rows to check on"},
        "--force": {"action": "store_true", "help": "replace --out if it has content"},
    },
    ("fidelity limits", "how far int8, int8-static and bf16 may stray from PyTorch fp32 on the "
     "checked rows; the flag and ROC-AUC limits bind from 200 --eval-data rows"): {
        "--max-diff": {"type": fraction, "default": Limits.max_diff,
                       "help": "largest absolute probability difference"},
        "--p99-diff": {"type": fraction, "default": Limits.p99_diff,
                       "help": "99th percentile of the absolute difference"},
        "--min-flag-agreement": {"type": fraction, "default": Limits.min_flag_agreement,
                                 "help": "least share of rows whose flag agrees with PyTorch's "
                                 "at the training thresholds"},
        "--max-auc-drop": {"type": fraction, "default": Limits.max_auc_drop,
                           "help": "largest macro ROC-AUC drop"},
    },
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m export",
        "Export a model folder written by `python -m train` to ONNX with dynamic batch and "
        "sequence axes, build the faster variants this machine can check (graph-optimized, "
        "int8, fp16 on CUDA, OpenVINO bf16 and static int8) and check each against PyTorch "
        "before writing it; a variant past its limits is left out, and export.json says why. "
        "Example: python -m export --opset 17 --eval-data labelled.csv",
        OPTIONS,
    )
    _hidden(p)
    return p.parse_args(_renamed(sys.argv[1:] if argv is None else argv))


def _hidden(p: argparse.ArgumentParser) -> None:
    """The earlier release's switches and the text column override, kept out of --help."""
    p.add_argument("--text-column", default=None, help=argparse.SUPPRESS)
    p.set_defaults(without=[])
    hidden = {"help": argparse.SUPPRESS, "default": argparse.SUPPRESS, "action": _Notice}
    for flag in DECIDED:
        p.add_argument(flag, **hidden)
    for flag in SWITCHES:
        p.add_argument(flag, nargs=0, **hidden)


class _Notice(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        name = option_string.removeprefix("--no-").removeprefix("--")
        if option_string.startswith("--no-"):
            namespace.without = [*namespace.without, name]
        print(
            f"export: note: {option_string} is no longer needed and will go in the next "
            "release; export decides it, or name variants with --variants",
            file=sys.stderr,
        )


def _renamed(argv: list[str]) -> list[str]:
    out = []
    for old, sep, value in (arg.partition("=") for arg in argv):
        if old in RENAMED:
            print(f"export: note: {old} is now {RENAMED[old]}", file=sys.stderr)
        out.append(RENAMED.get(old, old) + sep + value)
    return out


def main(argv: list[str] | None = None) -> int:
    args = vars(parse_args(argv))
    setup_logging("export")
    hide_library_notes()
    from export.run import run  # heavy imports after --help and argument errors

    limits = Limits(**{f.name: args.pop(f.name) for f in dataclasses.fields(Limits)})
    model = args.pop("model")
    code, record = run_stage("export", lambda: run(model_dir=model, limits=limits, **args))
    if code:
        return code
    for name, v in record["variants"].items():
        print(
            f"{name:<11} {v['file']:<22} {v['size_mb']:>7.1f} MB  {v['precision']:<11} "
            f"max abs diff {v['max_abs_diff']:.1e}"
        )
    for name, why in record["skipped"].items():
        print(f"{name:<11} left out: {why}")
    print(f"wrote {args['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

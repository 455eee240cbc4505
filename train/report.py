"""The per-epoch stats table (CSV, JSON, printed) and a short report.md for the output folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

COLUMNS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "valid_loss": "valid loss",
    "roc_auc_macro": "valid ROC-AUC macro",
    "roc_auc_micro": "valid ROC-AUC micro",
    "train_time_s": "training time (s)",
    "valid_time_s": "validation time (s)",
    "train_samples_per_s": "samples/s",
}


def stats_frame(epochs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{k: e[k] for k in COLUMNS} for e in epochs])


def format_stats(epochs: list[dict]) -> str:
    frame = stats_frame(epochs).rename(columns=COLUMNS)
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def write_stats(epochs: list[dict], out: Path) -> None:
    stats_frame(epochs).to_csv(out / "stats.csv", index=False)
    dump_json(epochs, out / "stats.json")


def dump_json(obj, path: Path) -> None:
    """JSON with NaN written as null, since NaN is not valid JSON."""
    path.write_text(json.dumps(_clean(obj), indent=2) + "\n")


def _clean(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def auc_table(metrics: dict) -> str:
    rows = ["| label | ROC-AUC |", "|---|---|"]
    rows += [f"| {n} | {_fmt(v)} |" for n, v in metrics["roc_auc"].items()]
    rows.append(f"| **macro** | **{_fmt(metrics['roc_auc_macro'])}** |")
    rows.append(f"| micro | {_fmt(metrics['roc_auc_micro'])} |")
    return "\n".join(rows)


def _fmt(v: float | None) -> str:
    return "n/a (one class only)" if v is None or math.isnan(v) else f"{v:.4f}"


def write_report(out: Path, args: dict, summary_text: str, metrics: dict, thresholds: dict) -> None:
    best, evaluation = metrics["validation"], metrics["eval"]
    parts = [
        "# Training report",
        f"Base model `{args['model']}`, data `{args['data']}`, device {args['device']} "
        f"({args['precision']}), seed {args['seed']}, max length {args['max_len']}.",
        "## Data\n```\n" + summary_text + "\n```\n![labels](label_distribution.png)\n"
        "![lengths](token_lengths.png)",
        "## Epochs\n```\n" + format_stats(metrics["epochs"]) + "\n```",
        f"## Validation (best epoch {best['epoch']})\n" + auc_table(best),
        "## Thresholds (max F1 on the validation split)\n"
        "| label | threshold | F1 |\n|---|---|---|\n"
        + "\n".join(
            f"| {n} | {t['threshold']:.3f} | {_fmt(t['f1'])} |" for n, t in thresholds.items()
        ),
    ]
    if evaluation is not None:
        parts.append(
            f"## Evaluation on `{args['eval_data']}` ({evaluation['rows']:,} rows)\n"
            + auc_table(evaluation)
        )
    (out / "report.md").write_text("\n\n".join(parts) + "\n")

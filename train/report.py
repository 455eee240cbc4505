"""What the output folder holds besides the model: the seed notebook's data summary (label counts,
token lengths, plots), the per-epoch stats table (CSV, JSON, printed) and a short report.md."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from common.jsonfile import dump_json
from common.labelled import LabelledData

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
    cuts = [f"| {n} | {t['threshold']:.3f} | {_fmt(t['f1'])} |" for n, t in thresholds.items()]
    parts = [
        "# Training report",
        f"Base model `{args['model']}`, data `{args['data']}`, device {args['device']} "
        f"({args['precision']}), seed {args['seed']}, max length {args['max_len']}.",
        "## Data\n```\n" + summary_text + "\n```\n![labels](label_distribution.png)\n"
        "![lengths](token_lengths.png)",
        "## Epochs\n```\n" + format_stats(metrics["epochs"]) + "\n```",
        f"## Validation (best epoch {best['epoch']})\n" + auc_table(best),
        "## Thresholds (max F1 on the validation split)\n"
        "| label | threshold | F1 |\n|---|---|---|\n" + "\n".join(cuts),
    ]
    if evaluation is not None:
        parts.append(
            f"## Evaluation on `{args['eval_data']}` ({evaluation['rows']:,} rows)\n"
            + auc_table(evaluation)
        )
    (out / "report.md").write_text("\n\n".join(parts) + "\n")


def data_summary(data: LabelledData, lengths: np.ndarray, max_len: int) -> dict:
    labels, names = data.labels, data.label_names
    return {
        "rows": len(labels),
        "positives": {n: int(labels[:, j].sum()) for j, n in enumerate(names)},
        "positive_share": {n: float(labels[:, j].mean()) for j, n in enumerate(names)},
        "no_label_share": float((labels.sum(axis=1) == 0).mean()),
        "empty_texts": data.empty_texts,
        "dropped_unlabeled": data.dropped_unlabeled,
        "tokens": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "p95": float(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
            "max_len": max_len,
            "truncated_share": float((lengths > max_len).mean()),
        },
    }


def format_summary(summary: dict) -> str:
    t, share = summary["tokens"], summary["positive_share"]
    positives = ", ".join(f"{n} {c:,} ({share[n]:.1%})" for n, c in summary["positives"].items())
    lines = [
        f"rows {summary['rows']:,}  ({summary['no_label_share']:.1%} have no label, "
        f"{summary['empty_texts']} empty texts, {summary['dropped_unlabeled']} unlabeled dropped)",
        f"positives: {positives}",
        f"tokens: min {t['min']} median {t['median']:.0f} p95 {t['p95']:.0f} max {t['max']}; "
        f"{t['truncated_share']:.1%} truncated at {t['max_len']}",
    ]
    return "\n".join(lines)


def plot_labels(summary: dict, path: Path) -> None:
    names = [*summary["positives"], "no label"]
    counts = [*summary["positives"].values(), round(summary["no_label_share"] * summary["rows"])]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(names, counts, color=["#c0392b"] * (len(names) - 1) + ["#7f8c8d"])
    ax.bar_label(bars, labels=[f"{c / summary['rows']:.1%}" for c in counts], fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title(f"Label distribution ({summary['rows']:,} rows; a row may have several labels)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lengths(lengths: np.ndarray, max_len: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    upper = max(int(np.percentile(lengths, 99)), max_len + 1)
    ax.hist(np.minimum(lengths, upper), bins=60, color="#2c3e50")
    ax.axvline(max_len, color="#c0392b", linestyle="--", label=f"--max-len {max_len}")
    share = (lengths > max_len).mean()
    ax.set_title(
        f"Tokens per comment (median {np.median(lengths):.0f}; {share:.1%} truncated; "
        f"the last bin holds everything >= {upper})"
    )
    ax.set_xlabel("tokens (with special tokens)")
    ax.set_ylabel("comments")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

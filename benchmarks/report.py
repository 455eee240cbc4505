"""Write results.json (every number), report.md (tables and a reading) and a rows/s bar chart."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from benchmarks import targets
from common.writes import atomic_file, write_text

CHART = "throughput.png"


def write(folder: Path, record: dict) -> None:
    """Each file under a temporary name first, renamed when complete."""
    folder.mkdir(parents=True, exist_ok=True)
    record["written"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write_text(folder / "results.json", json.dumps(record, indent=2, default=str) + "\n")
    if record.get("throughput"):
        with atomic_file(folder / CHART) as tmp:
            chart(record, tmp)
    write_text(folder / "report.md", markdown(record))


def markdown(record: dict) -> str:
    s, env = record["settings"], record["env"]
    where = env.get("gpu") or env["cpu"]
    lines = [
        f"# Benchmarks on {s['device']}: {where}",
        "",
        f"Written {record['written']} by `{command_line(s)}`.",
        "",
        *_setup(record),
        *_throughput(record),
        *_quality(record),
        *_targets(record),
        "## Reading",
        "",
        *(f"- {line}" for line in [*targets.reading(record), *record.get("notes", [])]),
        "",
    ]
    return "\n".join(lines)


def command_line(s: dict) -> str:
    parts = ["python -m benchmarks", s["command"], "--device", s["device"]]
    if s["bert_base"]:
        parts.append("--bert-base")
    else:
        parts += ["--model", s["model_dir"], "--onnx", s["onnx_dir"]]
    parts += ["--rows", str(s["rows"]), "--repeats", str(s["repeats"])]
    parts += ["--batch-size", str(s["batch_size"]), "--threads", str(s["threads"])]
    if s["texts"] and s["command"] != "quality":
        parts += ["--texts", s["texts"]]
    if s["eval_data"]:
        parts += ["--eval-data", s["eval_data"]]
    return " ".join(parts)


def _setup(record: dict) -> list[str]:
    s, env, m = record["settings"], record["env"], record["model"]
    texts = record.get("texts") or {}
    source = (
        "generated stand-in texts (no real comments found)"
        if texts.get("source") == "generated"
        else f"real comments, a seeded random sample of {texts.get('source')}"
        + (" (file repeated to reach --rows)" if texts.get("repeated") else "")
    )
    weights = " (random weights)" if s["bert_base"] else ""
    busy = [env["busy_before"]["cores_busy"], env["busy_after"]["cores_busy"]]
    rows = [
        ("model", f"{m['architecture']}, {m['layers']} layers, hidden {m['hidden_size']}, "
         f"{m['parameters_m']}M parameters{weights}"),
        ("texts", f"{s['rows']:,} rows of {source}" if texts else "(throughput not run)"),
        ("max length, batch size", f"{s['max_length']}, {s['batch_size']}"),
        ("repeats", f"{s['repeats']} after a warm-up, interleaved across engines"),
        ("CPU", f"{env['cpu']}, {env['cores']} usable cores ({', '.join(env['cpu_flags'])})"),
        ("threads", f"{env['threads']} (torch {env['torch_threads']}, onnxruntime sessions "
         f"{env['threads']}, end-to-end scorer {env['threads']})"),
        ("CPU busy before / after (other work)", f"{busy[0]} / {busy[1]} cores"),
        ("versions", f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
         f"transformers {env['transformers']}, python {env['python']}"),
    ]  # fmt: skip
    if env.get("gpu"):
        gpu = f"{env['gpu']} (driver {env.get('gpu_driver')}, {env.get('gpu_memory')})"
        rows.insert(4, ("GPU", f"{gpu}, CUDA {env.get('torch_cuda')}"))
    for name, why in record.get("missing_variants", {}).items():
        rows.append((f"variant {name}", f"not measured: {why}"))
    return ["## Setup", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]


def _throughput(record: dict) -> list[str]:
    block = record.get("throughput")
    if not block:
        return []
    speed = block["engines"]
    base = speed[targets.SEED]["rows_per_s"]
    torch_rate = speed[targets.TORCH]["rows_per_s"]
    lines = [
        "## Throughput",
        "",
        "Texts to probabilities, tokenization included; median of the repeats, range in brackets.",
        "",
        "| engine | provider | precision | batching | median s | rows/s | tokens/s "
        "| x seed loop | x PyTorch bucketed | max abs diff vs PyTorch |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in speed.items():
        lines.append(
            f"| {name} | {r['provider']} | {r['precision']} | {r['batching']} "
            f"| {r['median_s']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f}) "
            f"| {r['rows_per_s']:,.0f} | {r['tokens_per_s']:,.0f} "
            f"| {r['rows_per_s'] / base:.2f} | {r['rows_per_s'] / torch_rate:.2f} "
            f"| {r['max_abs_diff']:.1e} |"
        )
    p = block["profile"]
    lines += [
        "",
        f"Real tokens: {p['tokens']:,} (median {p['median_tokens']:.0f} per text, "
        f"{100 * p['truncated_share']:.1f}% of texts cut at {record['settings']['max_length']}). "
        f"Tokenizer alone: {p['tokenize_batch_rows_per_s']:,.0f} rows/s in one batch call, "
        f"{p['tokenize_one_by_one_rows_per_s']:,.0f} rows/s one by one (encode_plus).",
        "",
        *_ceiling_lines(block.get("ceiling")),
        f"![rows/s per engine]({CHART})",
        "",
    ]
    return lines


def _quality(record: dict) -> list[str]:
    block = record.get("quality")
    if not block:
        return []
    labels = list(block["positives"])
    lines = [
        "## Quality",
        "",
        f"{block['rows']:,} labelled rows of {block['source']} "
        f"(positives: {', '.join(f'{k} {v}' for k, v in block['positives'].items())}).",
        "",
        "| engine | macro ROC-AUC | change vs PyTorch | max abs diff | "
        + " | ".join(labels)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(labels),
    ]
    for name, r in block["engines"].items():
        per_label = " | ".join(_num(r["roc_auc"][label], ".4f") for label in labels)
        lines.append(
            f"| {name} | {_num(r['roc_auc_macro'], '.4f')} | {_num(r['roc_auc_change'], '+.4f')} "
            f"| {r['max_abs_diff']:.1e} | {per_label} |"
        )
    return [*lines, ""]


def _targets(record: dict) -> list[str]:
    rows = record.get("targets") or []
    if not rows:
        return []
    mark = {True: "met", False: "**missed**", None: "not measured"}
    lines = ["## Targets", "", "| target | goal | measured | result |", "|---|---|---|---|"]
    for r in rows:
        result = mark[r["met"]] + (f": {r['gap']}" if r.get("gap") else "")
        if r.get("caveat"):
            result += f" ({r['caveat']})"
        lines.append(f"| {r['target']} | {r['goal']} | {r['measured']} | {result} |")
    return [*lines, ""]


def _num(value, fmt: str) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, fmt)
    )


def chart(record: dict, path: Path) -> None:
    """Horizontal bars of median rows/s per engine, whiskers from the slowest to fastest repeat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = record["throughput"]["engines"]
    names = list(speed)[::-1]
    medians = [speed[n]["rows_per_s"] for n in names]
    low = [max(0, speed[n]["rows_per_s"] - speed[n]["rows_per_s_min"]) for n in names]
    high = [max(0, speed[n]["rows_per_s_max"] - speed[n]["rows_per_s"]) for n in names]
    colors = {"pytorch": "#8c8c8c", "onnxruntime": "#1f77b4", "end-to-end": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names, medians, xerr=[low, high], color=[colors[speed[n]["group"]] for n in names])
    for y, name in enumerate(names):
        ax.text(speed[name]["rows_per_s_max"], y, f"  {medians[y]:,.0f}", va="center", fontsize=8)
    env = record["env"]
    threads = f"{env['threads']} thread{'s' * (env['threads'] > 1)}"
    title = f"rows/s per engine, {env.get('gpu') or env['cpu']} ({threads})"
    busy = max(env["busy_before"]["cores_busy"], env["busy_after"]["cores_busy"])
    if env["device"] == "cpu" and busy >= 0.3:
        title += f"\nwhile other work kept ~{busy:.1f} of {env['cores']} cores busy"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(
        f"rows/s (median of {record['settings']['repeats']}; {record['settings']['rows']:,} rows)"
    )
    ax.set_xlim(0, max(speed[n]["rows_per_s_max"] for n in names) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")  # the temporary name has no .png
    plt.close(fig)


def _ceiling_lines(c: dict | None) -> list[str]:
    """The arithmetic: useful GFLOP/s per engine against a bare GEMM of the model's shape."""
    if not c:
        return []
    gemm = c["gemm"]["gflops"]
    rates = ", ".join(
        f"{name} {rate:,.1f} ({100 * rate / gemm:.0f}%)"
        for name, rate in c["useful_gflops"].items()
    )
    return [
        f"Arithmetic: {c['flop_per_token'] / 1e6:.1f} MFLOP per real token (encoder linear layers "
        f"and attention). A bare {c['gemm']['dtype']} matrix multiply of the model's feed-forward "
        f"shape, {c['gemm']['shape']}, runs at {gemm:,.1f} GFLOP/s on this device. Useful "
        f"GFLOP/s (real tokens only) and their share of that: {rates}. int8 engines do integer "
        "arithmetic, to which the fp32 figure is only a rough guide.",
        "",
    ]

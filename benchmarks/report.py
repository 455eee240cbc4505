"""Write results.json (every number), report.md (tables, targets, notes) and a rows/s bar chart;
`summary` is the few lines printed on stdout."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from benchmarks import machine, targets
from common.writes import atomic_file, write_text

CHART = "throughput.png"
COLORS = {"pytorch": "#8c8c8c", "onnxruntime": "#1f77b4", "openvino": "#9467bd"}  # bars by group
COLORS["end-to-end"] = "#2ca02c"


def write(folder: Path, record: dict) -> None:
    """Each file under a temporary name first, renamed when complete."""
    folder.mkdir(parents=True, exist_ok=True)
    record["written"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write_text(folder / "results.json", json.dumps(record, indent=2, default=str) + "\n")
    if record.get("throughput"):
        with atomic_file(folder / CHART) as tmp:
            chart(record, tmp)
    write_text(folder / "report.md", markdown(record))


def summary(record: dict) -> str:
    """The stdout result: one line per engine and per target."""
    env = record["env"]
    where = env.get("gpu") or f"{env['cpu']} ({', '.join(env['cpu_flags'])})"
    lines = [f"device {env['device']}: {where}, {env['threads']} threads"]
    speed = record.get("throughput", {}).get("engines", {})
    best = targets.best_pytorch(speed)
    for name, r in speed.items():
        ratio = (
            "FAILED: " + r["failed"]
            if r.get("failed")
            else f"{r['rows_per_s'] / speed[best]['rows_per_s']:5.2f}x fastest faithful PyTorch"
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


def markdown(record: dict) -> str:
    s, env = record["settings"], record["env"]
    where = env.get("gpu") or env["cpu"]
    lines = [
        f"# Benchmarks on {s['device']}: {where}",
        "",
        f"Written {record['written']} by `{command_line(s)}`, at commit "
        f"{env.get('commit', 'unknown')}.",
        "",
        *_setup(record),
        *_throughput(record),
        *_quality(record),
        *_targets(record),
    ]
    notes = [*targets.notes(record), *record.get("notes", [])]
    if notes:
        lines += ["## Notes", "", *(f"- {line}" for line in notes), ""]
    return "\n".join(lines)


def command_line(s: dict) -> str:
    folders = ["--model", s["model_dir"], "--onnx", s["onnx_dir"]]
    parts = ["python -m benchmarks", s["command"], "--device", s["device"]]
    parts += ["--bert-base"] if s["bert_base"] else folders
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
        "generated stand-in texts (no --texts given)"
        if texts.get("source") == "generated"
        else f"real comments, a seeded random sample of {texts.get('source')}"
        + (" (file repeated to reach --rows)" if texts.get("repeated") else "")
    )
    busy = [env["busy_before"]["cores_busy"], env["busy_after"]["cores_busy"]]
    rows = [
        ("model", f"{m['architecture']}, {m['layers']} layers, hidden {m['hidden_size']}, "
         f"{m['parameters_m']}M parameters{' (random weights)' * s['bert_base']}"),
        ("texts", f"{s['rows']:,} rows of {source}" if texts else "(throughput not run)"),
        ("max length, batch size", f"{s['max_length']}, {s['batch_size']}"),
        ("repeats", f"{s['repeats']} after a warm-up, interleaved across engines"),
        ("CPU", f"{env['cpu']}, {env['cores']} usable cores ({', '.join(env['cpu_flags'])})"),
        ("threads", f"{env['threads']} (torch {env['torch_threads']}, onnxruntime and OpenVINO "
         f"sessions {env['threads']}, end-to-end scorer {env['threads']})"),
        ("CPU busy before / after (other work)", f"{busy[0]} / {busy[1]} cores"),
        ("versions", f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
         f"openvino {env.get('openvino', '-')}, transformers {env['transformers']}, "
         f"python {env['python']}"),
    ]  # fmt: skip
    if env.get("gpu"):
        gpu = f"{env['gpu']} (driver {env.get('gpu_driver')}, {env.get('gpu_memory')})"
        rows.insert(4, ("GPU", f"{gpu}, CUDA {env.get('torch_cuda')}"))
    for name, why in record.get("missing_variants", {}).items():
        rows.append((f"variant {name}", f"not measured: {why}"))
    for name, why in record.get("left_out", {}).items():
        rows.append((name, f"left out: {why}"))
    return ["## Setup", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]


def _throughput(record: dict) -> list[str]:
    if not (block := record.get("throughput")):
        return []
    speed = block["engines"]
    best = targets.best_pytorch(speed)
    useful = (block.get("ceiling") or {}).get("useful", {})
    lines = [
        "## Throughput",
        "",
        "Texts to probabilities, tokenization included; median of the repeats, range in brackets. "
        f"Fastest PyTorch within the variants' fidelity limits (faithful): {best}; fastest of any "
        f"fidelity: {targets.best_pytorch(speed, faithful=False)}. Useful rate: real tokens "
        "only, against the ceiling of the engine's own arithmetic.",
        "",
        *_timing_notes(speed),
        "",
        "| engine | provider | precision | median s | rows/s | x fastest faithful PyTorch "
        "| x seed loop "
        "| max / p99 abs diff vs PyTorch fp32 | flags agree | within the limits "
        "| useful G(FL)OP/s (% of ceiling) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in speed.items():
        ratios = (
            f"failed: {r['failed']} | not ranked"
            if r.get("failed")
            else f"{_per(r, speed, best)} | {_per(r, speed, targets.SEED)}"
        )
        lines.append(
            f"| {name} | {r['provider']} | {r['precision']} "
            f"| {r['median_s']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f}) "
            f"| {r['rows_per_s']:,.0f} | {ratios} | {_fidelity(r)} "
            f"| {_useful(useful.get(name))} |"
        )
    p = block["profile"]
    return [
        *lines,
        "",
        "Batching: the seed's loop pads every text to the max length in input order, one "
        "encode_plus per text; every other engine sorts by token length and pads each batch to "
        f"its longest (padding {p['pad_factor_padded']:.1f}x vs {p['pad_factor_bucketed']:.2f}x "
        "the real tokens); the end-to-end rows also read the CSV and write Parquet.",
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


def _timing_notes(speed: dict) -> list[str]:
    """What is timed apart: compiling, loading, and the end-to-end runs' length."""
    from benchmarks.engines import E2E_COPIES

    compiled = [f"{n} {r['first_call_s']} s" for n, r in speed.items() if "first_call_s" in r]
    loads = [f"{n} {min(r['load_s'])} s" for n, r in speed.items() if r.get("load_s")]
    lines = [
        f"The end-to-end rows score the texts {E2E_COPIES} times over in one file (rows/s per "
        "copy), one chunk per copy so that its batches are the variant's own, and one-off costs "
        "(OpenVINO's kernels per new batch shape, tokenizing the first chunk before the model "
        "starts) fade as in a large file. Each run is a new Python process, as `python -m "
        "score` is; starting it (imports, loading the model) is timed apart: "
        f"{', '.join(loads) or 'n/a'}."
    ]
    if stages := speed.get(targets.E2E, {}).get("summary", {}).get("stage_seconds"):
        seconds = speed[targets.E2E]["summary"]["seconds"]
        lines.append(
            f"Its last run of {seconds:.1f} s kept each stage busy for (s): reading and "
            f"tokenizing {stages['read']:.1f}, the model {stages['predict']:.1f}, writing "
            f"{stages['write']:.1f} (reading and writing run beside the model)."
        )
    if compiled:
        lines.append(
            "torch.compile's first pass over the texts (compiling included) is not in its rows/s: "
            + ", ".join(compiled)
            + "."
        )
    return [" ".join(lines), ""]


def _per(row: dict, speed: dict, base: str | None) -> str:
    if base is None or base not in speed or speed[base].get("failed"):
        return "n/a"
    return f"{row['rows_per_s'] / speed[base]['rows_per_s']:.2f}"


def _fidelity(r: dict) -> str:
    """Max / p99 gap, worst per-label flag agreement, and which limits (if any) it breaks."""
    flags = "-" if r.get("flag_agreement_min") is None else f"{r['flag_agreement_min']:.2%}"
    within = "no: " + "; ".join(r["limits_broken"]) if r.get("limits_broken") else "yes"
    gap = f"{r['max_abs_diff']:.1e} / {r.get('p99_abs_diff', float('nan')):.1e}"
    return f"{gap} | {flags} | {within}"


def _useful(u: dict | None) -> str:
    if not u:
        return "n/a"
    share = "" if u["share"] is None else f" ({100 * u['share']:.0f}% of {u['arith']})"
    return f"{u['gops']:,.1f}{share}"


def _quality(record: dict) -> list[str]:
    if not (block := record.get("quality")):
        return []
    labels = list(block["positives"])
    lines = [
        "## Quality",
        "",
        f"{block['rows']:,} labelled rows of {block['source']} "
        f"(positives: {', '.join(f'{k} {v}' for k, v in block['positives'].items())}).",
        "",
        f"| engine | macro ROC-AUC | change vs PyTorch | max abs diff | {' | '.join(labels)} |",
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
    if not (rows := record.get("targets")):
        return []
    mark = {True: "met", False: "**missed**", None: "not measured"}
    lines = ["## Targets", "", "| target | goal | measured | result |", "|---|---|---|---|"]
    for r in rows:
        result = mark[r["met"]] + (f": {r['why']}" if r.get("why") else "")
        if r.get("caveat"):
            result += f" ({r['caveat']})"
        lines.append(f"| {r['target']} | {r['goal']} | {r['measured']} | {result} |")
    return [*lines, ""]


def _num(value, fmt: str) -> str:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "n/a" if missing else format(value, fmt)


def chart(record: dict, path: Path) -> None:
    """Horizontal bars of median rows/s per engine, whiskers from the slowest to fastest repeat."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing to close

    speed = record["throughput"]["engines"]
    names = list(speed)[::-1]
    medians = [speed[n]["rows_per_s"] for n in names]
    low = [max(0, speed[n]["rows_per_s"] - speed[n]["rows_per_s_min"]) for n in names]
    high = [max(0, speed[n]["rows_per_s_max"] - speed[n]["rows_per_s"]) for n in names]
    fig = Figure(figsize=(8, 0.5 * len(names) + 1.5))
    ax = fig.subplots()
    ax.barh(names, medians, xerr=[low, high], color=[COLORS[speed[n]["group"]] for n in names])
    best = targets.best_pytorch(speed)
    for y, name in enumerate(names):
        label = (
            "failed: not ranked"
            if speed[name].get("failed")
            else f"{medians[y]:,.0f} ({_per(speed[name], speed, best)}x fastest faithful PyTorch)"
        )
        ax.text(speed[name]["rows_per_s_max"], y, f"  {label}", va="center", fontsize=8)
    env, s = record["env"], record["settings"]
    threads = f"{env['threads']} thread{'s' * (env['threads'] > 1)}"
    isa = machine.isa_tag(frozenset(env["cpu_flags"]))
    where = env.get("gpu") or (f"{env['cpu']} ({isa})" if isa else env["cpu"])
    title = f"rows/s per engine, {where}, {threads}"
    if busy := targets.competing_load(env):
        title += f"\nwhile other work kept ~{busy:.1f} of {env['cores']} cores busy"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"rows/s (median of {s['repeats']}; {s['rows']:,} rows)")
    ax.set_xlim(0, max(speed[n]["rows_per_s_max"] for n in names) * 1.45)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")  # the temporary name has no .png


def _ceiling_lines(c: dict | None) -> list[str]:
    """The arithmetic: one bare GEMM of the model's feed-forward shape per arithmetic used."""
    if not c:
        return []

    def each(g: dict) -> str:
        kernels = ", ".join(f"{k} {v:,.1f}" for k, v in g.get("kernels", {}).items())
        return kernels + (f"; the CPU's peak {g['cpu_peak']:,.1f}" if "cpu_peak" in g else "")

    gemms = "; ".join(
        f"**{arith} {g['gops']:,.1f} {targets.UNIT.get(arith, 'GFLOP/s')}** ({g['kernel']}; "
        f"bare pair: {each(g)})"
        for arith, g in c["gemm"].items()
    )
    shape = next(iter(c["gemm"].values()))["shape"] if c["gemm"] else ""
    exported = c.get("op_per_token_exported", c["op_per_token"])
    graph = (
        f"; the exported graph, whose last layer runs for the [CLS] position only, "
        f"{exported / 1e6:.2f} M, and each engine is counted for what it computes"
        if exported != c["op_per_token"]
        else ""
    )
    return [
        f"Arithmetic: {c['op_per_token'] / 1e6:.2f} M operations per real token (encoder linear "
        f"layers and attention{graph}). Ceilings: the fastest of torch, onnxruntime and OpenVINO "
        f"running the feed-forward pair {shape}, or of the engines on the whole model where one "
        "is faster, or the CPU's peak where higher (an estimate from its vector units, the "
        f"threads used and the clock /proc/cpuinfo reports): {gemms}.",
        "",
    ]

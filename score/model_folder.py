"""The model: read what scoring needs (labels, max length, ONNX variants, thresholds) from the
folder that `python -m export` wrote; nothing is imported from export."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.cpu import NO_BF16, bf16_flag, cpu_flags
from common.errors import UserError
from common.jsonfile import read_json
from common.variants import VARIANTS
from score.variant_rule import auto_variant, cpu_kind_problem

log = logging.getLogger("score")

FIX_FOLDER = "pass --model with a folder written by python -m export"


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    labels: list[str]
    max_length: int  # the length used in training, from export.json or the tokenizer config
    max_positions: int  # the model's position-embedding limit
    variants: dict[str, Path]  # ONNX files present, by variant name
    skipped: dict[str, str]  # variants export left out, with its reason
    records: dict[str, dict] = field(default_factory=dict)  # export.json's entry per variant


def read_model_folder(path: Path) -> ModelFolder:
    """Check the folder cheaply (no model is loaded) and read its labels and lengths."""
    if not path.is_dir():
        raise UserError(f"model folder {path} does not exist; {FIX_FOLDER}")
    needed = ("config.json", "tokenizer.json", "model.onnx")
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)}; {FIX_FOLDER}")
    config = _read_json(path / "config.json")
    id2label = config.get("id2label") or {}
    if not id2label:
        raise UserError(f"{path}/config.json has no id2label; {FIX_FOLDER}")
    export = _read_json(path / "export.json", optional=True)
    tokenizer_config = _read_json(path / "tokenizer_config.json", optional=True)
    max_length = export.get("max_length") or tokenizer_config.get("model_max_length")
    if not isinstance(max_length, int) or max_length > 100_000:  # transformers' "no limit" is 1e30
        raise UserError(
            f"{path} records no max length (export.json or tokenizer_config.json); "
            f"pass --max-len or {FIX_FOLDER}"
        )
    return ModelFolder(
        path=path,
        labels=[id2label[str(i)] for i in range(len(id2label))],
        max_length=max_length,
        max_positions=int(config.get("max_position_embeddings", max_length)),
        variants=_variant_files(path, export),
        skipped=export.get("skipped", {}),
        records=export.get("variants", {}),
    )


def _variant_files(path: Path, export: dict) -> dict[str, Path]:
    """The ONNX files export.json lists under "variants", and model.onnx, which the folder must
    hold (export writes nothing when fp32 fails parity). The file table serves only a folder
    without export.json. A listed file that is missing is refused."""
    if not export:
        return {n: path / v.file for n, v in VARIANTS.items() if (path / v.file).is_file()}
    files = {"fp32": path / VARIANTS["fp32"].file}
    for name, entry in export.get("variants", {}).items():
        files[name] = path / (entry.get("file") or VARIANTS[name].file)
    # An OpenVINO IR (.xml) keeps its weights in the .bin beside it.
    weights = [f.with_suffix(".bin") for f in files.values() if f.suffix == ".xml"]
    missing = [f.name for f in [*files.values(), *weights] if not f.is_file()]
    if missing:
        raise UserError(
            f"{path}/export.json lists {', '.join(missing)}, which the folder lacks; {FIX_FOLDER}"
        )
    return files


def choose_variant(
    folder: ModelFolder, requested: str, provider: str, flags: frozenset[str] | None = None
) -> str:
    """The variant to run: `requested`, or for `auto` the one score.variant_rule picks."""
    return variant_choice(folder, requested, provider, flags)[0]


def variant_choice(
    folder: ModelFolder, requested: str, provider: str, flags: frozenset[str] | None = None
) -> tuple[str, str]:
    """The variant and why; `flags` None means this CPU's."""
    flags = cpu_flags() if flags is None else flags
    if requested == "auto":
        pick, why = auto_variant(provider, flags, set(folder.variants), folder.records)
        return pick, f"auto: {why}"
    if provider not in VARIANTS[requested].devices:
        other = "cuda" if provider == "cpu" else "cpu"
        raise UserError(
            f"--variant {requested} runs on {other.upper()} only and the provider is {provider}; "
            f"pass --provider {other} or another --variant"
        )
    if requested == "bf16" and not bf16_flag(flags):
        raise UserError(
            f"--variant bf16 needs bf16 arithmetic in hardware and {NO_BF16} (OpenVINO would "
            "quietly run fp32); pass --variant optimized or --variant auto"
        )
    if requested == "int8-static":
        problem = cpu_kind_problem(folder.records.get(requested), flags)
        if problem is not None:
            raise UserError(f"--variant int8-static: {problem}, or pass --variant optimized")
    if requested not in folder.variants:
        why = folder.skipped.get(requested, "not exported")
        raise UserError(
            f"{folder.path} has no {requested} variant ({VARIANTS[requested].file}: {why}); "
            f"pass --variant with one of: {', '.join(folder.variants)}"
        )
    return requested, "asked for with --variant"


def resolve_max_len(folder: ModelFolder, max_len: int | None) -> int:
    """The training max length unless overridden; never beyond the position embeddings."""
    if max_len is None:
        return folder.max_length
    if not 2 < max_len <= folder.max_positions:
        raise UserError(
            f"--max-len {max_len} is outside 3..{folder.max_positions} (the model's position "
            f"embeddings); leave it out to use the training length {folder.max_length}"
        )
    if max_len != folder.max_length:
        log.warning(
            f"--max-len {max_len} differs from the training length {folder.max_length}: "
            "scores will shift"
        )
    return max_len


def read_thresholds(folder: ModelFolder) -> np.ndarray:
    """Per-label decision thresholds saved at training, in label order (float32)."""
    path = folder.path / "thresholds.json"
    if not path.is_file():
        raise UserError(
            f"{folder.path} has no thresholds.json (python -m train writes it and export copies "
            "it); export a trained model folder or drop --thresholds"
        )
    saved = _read_json(path)
    missing = [n for n in folder.labels if "threshold" not in saved.get(n, {})]
    if missing:
        raise UserError(
            f"{path} has no threshold for {', '.join(missing)}; re-export the trained model "
            "or drop --thresholds"
        )
    return np.array([saved[n]["threshold"] for n in folder.labels], dtype=np.float32)


def _read_json(path: Path, optional: bool = False) -> dict:
    return {} if optional and not path.is_file() else read_json(path, FIX_FOLDER)

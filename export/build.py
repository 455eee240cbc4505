"""How each variant of common/variants.py is made in the export folder: one build function each.

A build function takes the folder's facts and an fp32 holdout (the reduced int8 variants try
HOLDOUT_LADDER in order; the others build once) and returns the file and what to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.variants import VARIANTS
from export import convert, quantize, quantize_static

# Tried in this order until an int8 variant is within its limits: the first is the fastest.
HOLDOUT_LADDER = ("none", "ffn-output", "ffn")


@dataclass
class Folder:
    """What the build functions need: the staging folder and the machine's facts."""

    path: Path
    isa: str  # onnxruntime int8's preset (--target-cpu)
    flags: frozenset[str]  # this CPU's: int8-static records whether it saturates here
    calibration: list[dict] = field(default_factory=list)  # int8-static's input batches
    written: set[str] = field(default_factory=set)  # variants kept so far


def fp32(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return folder.path / VARIANTS["fp32"].file, {}


def optimized(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return convert.optimize(folder.path, for_gpu=False, fp16=False), {}


def fp16(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    path = convert.optimize(folder.path, for_gpu=True, fp16=True)
    return path, {"io": "int64 inputs, float32 logits (fp16 inside)"}


def int8(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    """The fused graph when optimized was written (its attention runs in int8 too: faster),
    else the plain one."""
    source = VARIANTS["optimized" if "optimized" in folder.written else "fp32"].file
    target = VARIANTS["int8"].file
    return quantize.quantize(folder.path, source, target, isa=folder.isa, holdout=holdout)


def bf16(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return folder.path / VARIANTS["bf16"].file, {}


def int8_static(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return quantize_static.quantize_static(
        folder.path, VARIANTS["fp32"].file, folder.calibration, holdout=holdout, flags=folder.flags
    )


BUILDERS = {
    "fp32": fp32,
    "optimized": optimized,
    "fp16": fp16,
    "int8": int8,
    "bf16": bf16,
    "int8-static": int8_static,
}


def holdouts(name: str) -> tuple[str | None, ...]:
    """The fp32 holdouts to try for `name`, fastest first."""
    return HOLDOUT_LADDER if VARIANTS[name].arith == "int8" else (None,)

"""Which variants an export tries, and which it leaves out and why, decided before any model is
exported: every variant this machine can build and check (the default), or those named with
--variants. A named variant that cannot be made here is refused at once."""

from __future__ import annotations

import logging

from common.errors import UserError
from common.variants import VARIANTS, Variant

log = logging.getLogger("export")

EVAL_HINT = "pass --eval-data with a labelled sample of your comments (2,000 rows or more)"


def plan(
    named: list[str] | None,
    flags: frozenset[str],
    *,
    cuda: bool,
    eval_data: bool,
    optimizer: str | None,
    without: tuple[str, ...] = (),
) -> tuple[dict[str, bool], dict[str, str]]:
    """{variant: named by the user} to try, in the table's order, and {variant: why} left out.

    `optimizer` is why onnxruntime's graph optimizer cannot take this model, or None.
    """
    tried, left_out = {"fp32": True}, {}
    for name, variant in VARIANTS.items():
        if name == "fp32":
            continue
        if name in without or (named is not None and name not in named):
            left_out[name] = "not named in --variants" if named else f"--no-{name}"
            continue
        why = cannot_make(variant, flags, cuda, eval_data, optimizer)
        if why is None:
            tried[name] = named is not None
        elif named is not None:
            raise UserError(f"--variants {name}: {why}")
        else:
            left_out[name] = why
            (log.warning if variant.calibrated else log.info)("%s left out: %s", name, why)
    return tried, left_out


def cannot_make(
    variant: Variant, flags: frozenset[str], cuda: bool, eval_data: bool, optimizer: str | None
) -> str | None:
    """Why `variant` cannot be built and checked on this machine, with what to do; or None."""
    if "cpu" not in variant.devices and not cuda:
        return (
            "its parity is checked on CUDA and onnxruntime cannot use CUDA here; export on a GPU "
            'machine (onnxruntime-gpu needs CUDA 13 and cuDNN 9: pip install "onnxruntime-gpu'
            '[cuda,cudnn]")'
        )
    if variant.needs and not any(f in flags for f in variant.needs):
        return (
            f"this CPU has none of {', '.join(variant.needs)}, so it cannot be checked here "
            "(OpenVINO would quietly run fp32); export on a CPU that has one"
        )
    if variant.calibrated and not eval_data:
        return f"it calibrates on --eval-data rows and none were given; {EVAL_HINT}"
    if variant.name in ("optimized", "fp16") and optimizer:
        return f"{optimizer}; leave it out of --variants"
    return None

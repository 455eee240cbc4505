"""Notes from optimum, onnxruntime, transformers and torch that no user can act on, hidden at
the stage's entry points (`python -m export`, `python -m export.int8_study`).

Each is harmless because every variant is checked against PyTorch before it is written.
"""

from __future__ import annotations

from common.cli import hide_log_messages, hide_warning


def hide_library_notes() -> None:
    """Hide the known-harmless notes below (each says why it is harmless)."""
    # optimum recommends opset 18 for BERT in general; whatever --opset gives, the parity check
    # below it decides whether the graph is right.
    hide_log_messages("optimum.exporters.onnx.convert", r"Opset \d+ is lower than the recommended")
    # The check removes duplicated tied weights (an LM head sharing the embeddings); a sequence
    # classifier has no tied weights, so without accelerate nothing is missed.
    hide_log_messages("optimum.exporters.onnx.base", r"Weight deduplication check")
    # optimum still passes `torch_dtype`; transformers maps it to `dtype` itself.
    for name in ("transformers.modeling_utils", "transformers.configuration_utils"):
        hide_log_messages(name, r"`torch_dtype` is deprecated")
    # transformers builds the mask's constant 1.0 with torch.tensor while tracing: the same on
    # every call, which is the case the warning itself calls safe.
    hide_warning(r"torch\.tensor results are registered as constants in the trace")
    # onnxruntime's quantizer advises its pre-processing (shape inference and graph fusion) on
    # every call; optimum's export and the optimizer have already done both here.
    hide_log_messages("", r"Please consider to run pre-processing before quantization")

"""PyTorch engines: the seed's padded loop, length-bucketed eager runs in fp32, bf16/fp16
autocast and dynamic int8, `torch.compile` of the fastest faithful one, and which of them a user
would pick on this device (flags passed in)."""

from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import torch

from common import cpu
from common.batching import batching_for, in_input_order

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
FEED = ("input_ids", "attention_mask")  # the model's inputs
NO_BF16 = (
    f"{cpu.NO_BF16}, so bf16 autocast converts in software and runs slower than fp32: no user "
    "would pick it"
)
NO_INT8_ON_CUDA = "PyTorch's dynamic int8 (quantize_dynamic) runs on the CPU only"


def torch_precisions(device: str, flags: frozenset[str]) -> tuple[list[str], dict[str, str]]:
    """The bucketed PyTorch precisions worth timing here, and why each other one is left out."""
    if device == "cuda":
        return ["fp32", "bf16", "fp16"], {"int8": NO_INT8_ON_CUDA}
    if cpu.bf16_flag(flags):
        return ["fp32", "bf16", "int8"], {}
    return ["fp32", "int8"], {"bf16": NO_BF16}


def compiled_precision(device: str, flags: frozenset[str]) -> str:
    """The arithmetic a user would hand to `torch.compile`: the fastest one that stays within the
    variants' fidelity limits (dynamic int8 does not: 0.39 max gap on real comments)."""
    if device == "cuda":
        return "fp16"
    return "bf16" if cpu.bf16_flag(flags) else "fp32"


def quantize_linear_int8(model):
    """A copy of `model` with every nn.Linear in dynamic int8 (weights int8, activations at run
    time): PyTorch's like-for-like peer of onnxruntime's dynamic int8 variant."""
    with warnings.catch_warnings():
        # Deprecated in favour of torchao, but present in torch 2.x and what a user finds first.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )


class InMemoryEngine:
    """An engine whose call leaves its probabilities in memory (`last`)."""

    def prepare(self, texts: list[str]) -> None:
        self.texts, self.last = texts, None

    def probs(self) -> np.ndarray:
        return self.last


class TorchEngine(InMemoryEngine):
    """PyTorch eager: the seed's loop (fp32, padded, input order) or the scorer's bucketing."""

    group = "pytorch"

    def __init__(
        self, model, tokenizer, *, max_len, batch_size, device, padded, arith="fp32", compile=False
    ):
        """`tokenizer`: transformers' for the seed's padded loop, else common.batching's;
        `compile`: run `torch.compile(model, dynamic=True)` (its first call compiles: the
        warm-up runs it on every text, and its time is kept apart as `first_call_s`)."""
        self.tokenizer, self.arith, self.padded = tokenizer, arith, padded
        self.model = quantize_linear_int8(model) if arith == "int8" else model
        if compile:
            self.model = torch.compile(self.model, dynamic=True)
        self.max_len, self.batch_size = max_len, batch_size
        self.device = self.provider = device
        named = {"fp32": "fp32", "int8": "int8 dynamic (nn.Linear)"}
        self.precision = named.get(arith, f"{arith} autocast")
        self.name = (
            f"pytorch-{arith}-{'padded' if padded else 'compiled' if compile else 'bucketed'}"
        )
        self.warm_on_all = compile  # shapes it has not met yet would compile inside the timing
        self.batching = (
            f"padded to {max_len}, input order, one encode_plus per text (the seed's loop)"
            if padded
            else "the scorer's: sorted by token length, padded to each batch's longest"
        )
        self.info = {"quantized_engine": torch.backends.quantized.engine} if arith == "int8" else {}
        if compile:
            self.precision += ", torch.compile (inductor, dynamic shapes)"

    def __call__(self) -> None:
        self.last = self._padded(self.texts) if self.padded else self._bucketed(self.texts)

    def _forward(self, feed: dict) -> np.ndarray:
        """One batch's probabilities from its input_ids and attention_mask (lists or arrays)."""
        dtype = AUTOCAST.get(self.arith)
        cast = torch.autocast(self.device, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            inputs = {k: torch.as_tensor(feed[k]).to(self.device, non_blocking=True) for k in FEED}
            logits = self.model(**inputs).logits
        return torch.sigmoid(logits.float()).cpu().numpy()

    def _padded(self, texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            encoded = [
                self.tokenizer.encode_plus(
                    text, max_length=self.max_len, padding="max_length", truncation=True
                )
                for text in texts[start : start + self.batch_size]
            ]
            out.append(self._forward({k: [e[k] for e in encoded] for k in FEED}))
        return np.concatenate(out)

    def _bucketed(self, texts: list[str]) -> np.ndarray:
        """The scorer's batches (common.batching): sorted by token count, padded per batch."""
        batching = batching_for(self.device, self.batch_size)
        return in_input_order(self.tokenizer.tokenize(texts), self._forward, batching)

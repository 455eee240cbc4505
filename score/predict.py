"""Tokenize + predict: the model's tokenizer + one variant's session -> probabilities, in the
batches common.batching builds, input order kept."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from common.batching import TextTokenizer, Tokens, batches, batching_for
from common.cpu import cpu_flags
from common.errors import UserError
from common.metrics import sigmoid as sigmoid64
from common.openvino_session import streams_for
from common.sessions import CUDA_FIX, cuda_usable, open_variant
from common.variants import precision
from score.model_folder import read_model_folder, resolve_max_len, variant_choice

log = logging.getLogger("score")


def resolve_provider(requested: str) -> str:
    """`auto`: CUDA when onnxruntime can really run on it, else the CPU; logs the choice."""
    if requested == "cpu":
        return "cpu"
    usable = cuda_usable()
    if requested == "cuda" and not usable:
        raise UserError(
            f"--provider cuda was asked for but onnxruntime cannot use CUDA here; {CUDA_FIX}, "
            "or pass --provider cpu"
        )
    if requested == "auto":
        log.info("provider auto: %s", "cuda" if usable else "cpu (no usable CUDA provider)")
    return "cuda" if usable else "cpu"


class Scorer:
    """Scores texts with one ONNX variant of the exported model (`batch_size=None`: 64 rows on the
    CPU, 256 on CUDA); reuse it, sessions are costly."""

    def __init__(
        self,
        model_dir: Path,
        *,
        variant: str = "auto",
        provider: str = "auto",
        batch_size: int | None = None,
        max_len: int | None = None,
        threads: int | None = None,
    ) -> None:
        folder = read_model_folder(Path(model_dir))
        self.labels: list[str] = folder.labels
        self.max_len = resolve_max_len(folder, max_len)
        self.provider: str = resolve_provider(provider)
        flags = cpu_flags()  # read once: the variant rule and OpenVINO's precision use them
        self.variant, self.variant_reason = variant_choice(folder, variant, self.provider, flags)
        self.batching = batching_for(self.provider, batch_size)
        self.batch_size = self.batching.size
        self.tokenizer = TextTokenizer(folder.path / "tokenizer.json", self.max_len)
        self.session = open_variant(
            self.variant,
            folder.variants[self.variant],
            self.provider,
            threads,
            flags=flags,
            streams=streams_for(flags, threads),
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.precision = precision(self.variant, flags)  # what the summary reports
        log.info(
            f"model {folder.path}: {self.variant} ({folder.variants[self.variant].name}, "
            f"{self.precision}) on {self.session.get_providers()[0]}, {len(self.labels)} labels, "
            f"max length {self.max_len}"
        )

    def tokenize(self, texts: list[str], stop: threading.Event | None = None) -> Tokens | None:
        return self.tokenizer.tokenize(texts, stop)

    def predict(self, texts: list[str]) -> np.ndarray:
        """float32 probabilities, shape (len(texts), len(labels)), in input order."""
        return self.predict_tokens(self.tokenize(texts))

    def predict_tokens(self, tokens: Tokens, first_row: int = 0) -> np.ndarray:
        """Sort by length, run batches padded to their longest text, put rows back in order. A NaN
        or inf logit stops the run, naming the input row (`first_row`: that of `tokens[0]`)."""
        probs = np.empty((len(tokens), len(self.labels)), dtype=np.float32)
        for rows, logits in self._logits(tokens):
            finite = np.isfinite(logits).all(axis=1)  # one pass over the batch's logits
            if not finite.all():
                raise UserError(
                    f"the {self.variant} model gave a non-finite score (NaN or inf) for input row "
                    f"{first_row + int(rows[~finite].min())} (0-based); nothing was written. "
                    "Re-export the model with python -m export (it checks every variant) or pass "
                    "another --variant"
                )
            probs[rows] = sigmoid(logits)
        return probs

    def _logits(self, tokens: Tokens):
        """(rows, logits) per batch; OpenVINO keeps several batches in flight where that pays."""
        if hasattr(self.session, "run_batches"):
            items = ((rows, self._inputs(feed)) for rows, feed in batches(tokens, self.batching))
            return self.session.run_batches(items, "logits")
        return ((rows, self.run_batch(feed)) for rows, feed in batches(tokens, self.batching))

    def _inputs(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "token_type_ids" not in self.input_names:
            del feed["token_type_ids"]
        return feed

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch; on CUDA through IO binding (inputs copied once, no output copy)."""
        feed = self._inputs(feed)
        if self.provider != "cuda":
            (logits,) = self.session.run(["logits"], feed)
            return logits
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output("logits", "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """In float64 so large negative logits don't overflow, returned as float32."""
    return sigmoid64(logits).astype(np.float32)

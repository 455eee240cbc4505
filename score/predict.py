"""Tokenize + predict: tokenizer + one onnxruntime session -> probabilities, in length-sorted
batches, input order kept.

The fast tokenizer is read straight from tokenizer.json with `tokenizers` (no transformers, no
torch); it gives the same ids as `AutoTokenizer` with truncation to the training max length.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from common.cpu import cpu_flags
from common.errors import UserError
from common.fidelity import sigmoid as sigmoid64
from common.sessions import CUDA_FIX, cuda_usable, open_variant
from score.model_folder import read_model_folder, resolve_max_len, variant_choice

log = logging.getLogger("score")

TOKENIZE_AT_ONCE = 1024  # Encoding objects cost ~8 KB each: flatten them every 1024 texts
CPU_BATCH_SIZE = 64
CUDA_BATCH_SIZE = 256


@dataclass
class Tokens:
    """Token ids of many texts, ragged: text i is `ids[starts[i] : starts[i] + lengths[i]]`."""

    ids: np.ndarray  # int32, all texts concatenated
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64, special tokens included, at most max_len

    def __len__(self) -> int:
        return len(self.lengths)


class TextTokenizer:
    """The model's fast tokenizer, truncating to `max_len`, without padding (batches pad later)."""

    def __init__(self, tokenizer_file: Path, max_len: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()  # padding happens per batch, to the longest text in it
        self.tokenizer.enable_truncation(max_length=max_len)

    def tokenize(self, texts: list[str], stop: threading.Event | None = None) -> Tokens | None:
        """Token ids for each text (truncated to `max_len`), flattened to save memory.

        Returns None as soon as `stop` is set (checked every TOKENIZE_AT_ONCE texts), so an
        interrupted run never waits for a whole chunk.
        """
        ids, lengths = [], []
        for start in range(0, len(texts), TOKENIZE_AT_ONCE):
            if stop is not None and stop.is_set():
                return None
            encodings = self.tokenizer.encode_batch_fast(texts[start : start + TOKENIZE_AT_ONCE])
            lengths.extend(len(e) for e in encodings)
            ids.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.zeros_like(lengths)
        np.cumsum(lengths[:-1], out=starts[1:])
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
        return Tokens(ids=flat, starts=starts, lengths=lengths)


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
    """Scores texts with one ONNX variant of the exported model; reuse it, sessions are costly.

    `batch_size=None` is 64 rows on the CPU and 256 on CUDA.
    """

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
        self.batch_size = batch_size or (
            CUDA_BATCH_SIZE if self.provider == "cuda" else CPU_BATCH_SIZE
        )
        self.tokenizer = TextTokenizer(folder.tokenizer_file, self.max_len)
        self.session = open_variant(
            self.variant, folder.variants[self.variant], self.provider, threads, flags=flags
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        log.info(
            "model %s: %s (%s) on %s, %d labels, max length %d",
            folder.path,
            self.variant,
            folder.variants[self.variant].name,
            self.session.get_providers()[0],
            len(self.labels),
            self.max_len,
        )

    def tokenize(self, texts: list[str], stop: threading.Event | None = None) -> Tokens | None:
        return self.tokenizer.tokenize(texts, stop)

    def predict(self, texts: list[str]) -> np.ndarray:
        """float32 probabilities, shape (len(texts), len(labels)), in input order."""
        return self.predict_tokens(self.tokenize(texts))

    def predict_tokens(self, tokens: Tokens, first_row: int = 0) -> np.ndarray:
        """Sort by length, run batches padded to their longest text, put rows back in order.

        A NaN or inf logit stops the run (UserError naming the variant and the input row,
        `first_row` being the 0-based input row of `tokens[0]`): it is never written.
        """
        probs = np.empty((len(tokens), len(self.labels)), dtype=np.float32)
        order = np.argsort(tokens.lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            logits = self.run_batch(self.padded_batch(tokens, rows))
            finite = np.isfinite(logits).all(axis=1)  # one pass over the batch's logits
            if not finite.all():
                raise UserError(self._non_finite_message(first_row + int(rows[~finite].min())))
            probs[rows] = sigmoid(logits)
        return probs

    def _non_finite_message(self, row: int) -> str:
        return (
            f"the {self.variant} model gave a non-finite score (NaN or inf) for input row {row} "
            "(0-based); nothing was written. Re-export the model with "
            "python -m export (it checks every variant) or pass another --variant"
        )

    def padded_batch(self, tokens: Tokens, rows: np.ndarray) -> dict[str, np.ndarray]:
        """int64 inputs for `rows`, padded with 0 to the longest of them."""
        lengths = tokens.lengths[rows]
        width = int(lengths.max())
        if self.provider == "cuda":
            width = -(-width // 8) * 8  # a multiple of 8 keeps fp16 matmuls on tensor cores
        positions = np.arange(width)
        mask = positions < lengths[:, None]
        gather = np.minimum(tokens.starts[rows, None] + positions, max(len(tokens.ids) - 1, 0))
        input_ids = np.where(mask, tokens.ids[gather], 0).astype(np.int64)
        feed = {"input_ids": input_ids, "attention_mask": mask.astype(np.int64)}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)  # one segment per text: all 0
        return feed

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch; on CUDA through IO binding (inputs copied once, no output copy)."""
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

"""The training loop written out: device and precision, optimizer and schedule, epochs, eval."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from common.errors import UserError
from common.metrics import roc_auc_report
from train.batching import collate, sorted_batches
from train.model import named_classifier_head

log = logging.getLogger("train")
LOG_EVERY = 50  # steps


@dataclass
class Precision:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32

    def __post_init__(self) -> None:
        # fp16 scales the loss so small gradients do not underflow; disabled, it passes through
        fp16 = self.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def autocast(self):
        on = self.autocast_dtype is not None  # plain fp32: a disabled autocast changes nothing
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=on)


def choose_precision(device: str) -> Precision:
    """auto = CUDA when present; bf16 autocast on CUDA (fp16 + grad scaler without bf16)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but torch sees no CUDA device; use --device cpu"
        )
    if device == "cpu" or not torch.cuda.is_available():
        return Precision(torch.device("cpu"), None)
    torch.backends.cuda.matmul.allow_tf32 = True  # for the fp32 parts outside autocast
    torch.backends.cudnn.allow_tf32 = True
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(torch.device("cuda"), dtype)


def init_head_bias(model, labels: np.ndarray) -> None:
    """Start each label's bias at the log-odds of its prevalence instead of 0 (p = 0.5): with rare
    labels (threat is 1% of Jigsaw) a zero bias spends the first steps pushing every logit down;
    starting at the prior lets the gradient go to telling rows apart (Lin et al. 2017, "Focal
    Loss", section 4.1)."""
    share = np.clip(labels.mean(axis=0), 1e-4, 1 - 1e-4)
    with torch.no_grad():
        named_classifier_head(model)[1].bias.copy_(torch.as_tensor(np.log(share / (1 - share))))


def make_optimizer(
    model, lr: float, head_lr: float, total_steps: int, warmup_ratio: float, device: torch.device
):
    """AdamW with the fresh classifier head on its own (higher) learning rate."""
    fused = device.type == "cuda"  # fused AdamW: one kernel for all parameters
    head = set(named_classifier_head(model)[1].parameters())
    groups = [
        {"params": [p for p in model.parameters() if p not in head], "lr": lr},
        {"params": list(head), "lr": head_lr},
    ]
    optimizer = torch.optim.AdamW(groups, fused=fused)
    warmup = int(total_steps * warmup_ratio)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def train_one_epoch(model, input_ids, labels, batches, steps, precision, pad_id, epoch) -> dict:
    """One pass over `batches`; `steps` is (optimizer, scheduler). Mean loss, steps, samples/s."""
    (optimizer, scheduler), scaler = steps, precision.scaler  # scaler: a pass-through but in fp16
    model.train()
    multiple = 8 if precision.device.type == "cuda" else 1  # tensor cores like multiples of 8
    loss_sum, seen, start = torch.zeros((), device=precision.device), 0, time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=None, leave=False)
    for step, rows in enumerate(bar, 1):
        logits = _logits(model, collate(input_ids, rows, pad_id, multiple), precision)
        target = torch.as_tensor(labels[rows], device=precision.device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach() * len(rows)
        seen += len(rows)
        if step % LOG_EVERY == 0 or step == len(batches):
            mean = (loss_sum / seen).item()  # sync point: only on logging steps
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{mean:.4f}", samples_s=f"{rate:.0f}")
            if bar.disable:  # no terminal: fixed-format lines for logs instead of a bar
                line = "epoch %d step %d/%d loss %.4f lr %.2e %.0f samples/s"
                log.info(line, epoch, step, len(batches), mean, scheduler.get_last_lr()[0], rate)
    elapsed = time.perf_counter() - start
    return {
        "train_loss": (loss_sum / max(seen, 1)).item(),
        "steps": len(batches),
        "train_time_s": elapsed,
        "train_samples_per_s": seen / elapsed if elapsed else float("nan"),
    }


def _logits(model, batch: dict, precision: Precision) -> torch.Tensor:
    """The forward pass under the run's autocast; logits in fp32."""
    inputs = {k: v.to(precision.device, non_blocking=True) for k, v in batch.items()}
    with precision.autocast():
        return model(**inputs).logits.float()


@torch.inference_mode()
def evaluate(model, input_ids, labels, precision, batch_size, pad_id) -> tuple:
    """Mean BCE-with-logits (as in training), sigmoid probabilities in the rows' order, and the
    ROC-AUC report."""
    model.eval()
    out = np.empty((len(input_ids), model.config.num_labels), dtype=np.float32)
    for rows in sorted_batches(np.asarray([len(x) for x in input_ids]), batch_size * 2):
        out[rows] = _logits(model, collate(input_ids, rows, pad_id), precision).cpu().numpy()
    logits = torch.from_numpy(out)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels))
    probs = torch.sigmoid(logits).numpy()
    return float(loss), probs, roc_auc_report(labels, probs, list(model.config.label2id))

"""The [CLS]-only last layer that export traces: the same logits as the whole model, and only
for the models it fits."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from export.cls_only import ClsOnlyLayer, cls_only_last_layer


def _batch(vocab: int) -> dict[str, torch.Tensor]:
    """Four texts of 3 to 11 tokens, padded to 11 on the right."""
    ids = torch.randint(5, vocab, (4, 11), generator=torch.Generator().manual_seed(0))
    mask = (torch.arange(11) < torch.tensor([[11], [7], [3], [9]])).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def test_the_cls_only_model_gives_the_whole_models_logits(tiny_model_dir: Path):
    whole = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="eager"
    ).eval()
    pruned = copy.deepcopy(whole)
    assert cls_only_last_layer(pruned)
    assert isinstance(pruned.bert.encoder.layer[-1], ClsOnlyLayer)
    assert not isinstance(pruned.bert.encoder.layer[0], ClsOnlyLayer)
    batch = _batch(whole.config.vocab_size)
    with torch.inference_mode():
        expected, got = whole(**batch).logits, pruned(**batch).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_other_models_are_left_whole(tiny_model_dir: Path):
    sdpa = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa"
    )
    distil = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=100, dim=32, hidden_dim=37, n_layers=1, n_heads=2)
    )
    for model in (sdpa, distil):
        before = copy.deepcopy(model.state_dict())
        assert not cls_only_last_layer(model)
        assert model.state_dict().keys() == before.keys()
    assert not any(isinstance(m, ClsOnlyLayer) for m in sdpa.modules())


@pytest.mark.parametrize("mask_rows", [1, 11])
def test_a_square_mask_is_cut_to_the_cls_row(tiny_model_dir: Path, mask_rows: int):
    """Additive masks of shape (batch, 1, 1, length) or (batch, 1, length, length) both work."""
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="eager"
    ).eval()
    layer = model.bert.encoder.layer[-1]
    hidden = torch.randn(
        2, 11, model.config.hidden_size, generator=torch.Generator().manual_seed(1)
    )
    mask = torch.zeros(2, 1, mask_rows, 11)
    mask[1, ..., 6:] = torch.finfo(torch.float32).min
    with torch.inference_mode():
        expected = layer(hidden, mask)[0][:, :1]
        got = ClsOnlyLayer(layer)(hidden, mask)[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

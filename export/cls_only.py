"""The exported graph's last encoder layer works on the [CLS] position alone.

BERT's classifier reads only the first position of the last layer (its pooler takes
`hidden_states[:, 0]`), so that layer's query, attention output, feed-forward and layer norms
are needed for [CLS] only; its keys and values still cover every token. Exporting it that way
gives the same logits with about a seventh less matrix arithmetic on a 6-layer model, and a
last attention of one row instead of a square (docs/variants.md, "The last layer")."""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger("export")


class ClsOnlyLayer(nn.Module):
    """A BertLayer that returns the [CLS] position only, shape (batch, 1, hidden). It keeps the
    layer's own submodules under their names, so the traced graph names its nodes as before."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.attention = layer.attention
        self.intermediate = layer.intermediate
        self.output = layer.output

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        cls = hidden_states[:, :1]
        if attention_mask is not None:  # (batch, 1, 1 or length, length): the row of [CLS]
            attention_mask = attention_mask[:, :, :1]
        # BertAttention takes queries from its first argument and keys and values from
        # `encoder_hidden_states`: [CLS] attends to every token, as in the full layer
        attended = self.attention(cls, attention_mask, encoder_hidden_states=hidden_states)[0]
        return (self.output(self.intermediate(attended), attended),)


def cls_only_last_layer(model: nn.Module) -> bool:
    """Swap the last encoder layer of a BERT sequence classifier (eager attention) for its
    [CLS]-only form, in place; False, leaving the model as it is, for any other model."""
    config = model.config
    bert = getattr(model, "bert", None)
    if (
        config.model_type != "bert"
        or getattr(bert, "pooler", None) is None
        or config.is_decoder
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "_attn_implementation", None) != "eager"
    ):
        log.info(
            "the last layer is exported whole: %s is not an eager BERT classifier",
            type(model).__name__,
        )
        return False
    layers = bert.encoder.layer
    layers[-1] = ClsOnlyLayer(layers[-1])
    return True

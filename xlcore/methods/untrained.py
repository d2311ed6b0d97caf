"""The untrained baseline: the multilingual encoder's states fed straight to the English UNet.

No alignment at all (DESIGN.md: the floor every method must beat). The UNet reads the encoder's last
hidden states as if they were the English text tower's; the pooled embedding (masked mean of the
states) is compared with CLIP image embeddings for retrieval. Both need equal widths, which holds for
the toy backbone (128) and for XLM-R base with SD 1.5 (768); otherwise the baseline is undefined.
"""

from __future__ import annotations



from ..errors import ConfigError
from ..registry import METHODS
from ..losses import masked_mean
from ._base import Conditioning, UntrainableMethod


@METHODS.register("untrained")
class Untrained(UntrainableMethod):
    title = "The floor: no alignment at all"
    summary = "baseline: the multilingual encoder fed to the English UNet, no alignment"
    prose = ("The multilingual encoder's last hidden states go straight into the English UNet's "
             "cross-attention as if they were the English text tower's (the widths match: 128 on toy, 768 "
             "for XLM-R base with SD 1.5), and their masked mean is the retrieval embedding. Nothing "
             "trains. Every method must beat this row; if one does not, it learned nothing that transfers.")
    diagram = "prompt (any language) -> multilingual encoder (frozen) -> UNet (frozen) -> image"
    order = 1
    label = "baseline: no alignment"

    def build(self) -> None:
        width = self.backbone.multilingual.config.hidden_size
        if width != self.backbone.unet.config.cross_attention_dim:
            raise ConfigError(f"the untrained baseline needs the multilingual width ({width}) to equal the UNet's "
                              f"cross-attention width ({self.backbone.unet.config.cross_attention_dim})")

    def _encode(self, texts, lang):
        states, mask = self.backbone.encode_multilingual(texts)
        pooled = masked_mean(states, mask)
        if pooled.shape[-1] != self.backbone.clip.config.projection_dim:
            pooled = None
        return Conditioning(states, pooled)

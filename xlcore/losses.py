"""The losses more than one layer shares: CLIP's symmetric InfoNCE and the masked mean pool.

They sit in the training layer, below the backbone and the methods, because both use them: the methods'
contrastive stages (TriKD, AltCLIP, mCLIP+'s MTE) and the toy backbone's aligned-encoder pretraining
(LaBSE's translation ranking, `backbone/toy.py`)."""
from __future__ import annotations

import torch
from torch import nn

from .distributed import gather_rows


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE between L2-normalised rows of `a` and `b` matched by position.

    Under data parallelism the rows of every process are gathered first, so each row is contrasted with
    the whole global batch (as open_clip's `gather_features`): N processes compute the loss, and once the
    Trainer averages gradients the gradient, that one process would compute on the whole batch."""
    a, b = gather_rows(a), gather_rows(b)
    a, b = nn.functional.normalize(a.float(), dim=-1), nn.functional.normalize(b.float(), dim=-1)
    logits = scale * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `states` (batch, length, width) over the positions `mask` marks."""
    mask = mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

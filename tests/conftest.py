"""Shared test setup: offline everywhere, small worlds, a fresh results folder per test."""

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

from xlcore.config import WorldConfig, apply_smoke  # noqa: E402
from xlcore.world import World  # noqa: E402


@pytest.fixture(scope="session")
def small_world() -> World:
    """A world shrunk by `smoke`, shared by tests that only read it."""
    return World(apply_smoke(WorldConfig()))


@pytest.fixture(scope="session")
def full_world() -> World:
    """The default-sized world (items are lazy, so building it is cheap)."""
    return World(WorldConfig())


@pytest.fixture(scope="session")
def smoke_backbone_dir(tmp_path_factory):
    """A toy backbone pretrained for a few steps per component (seconds), in its shipped layout."""
    from xlcore.backbone.pretrain import pretrain_toy_backbone, smoke_config
    from xlcore.backbone.toy import ASSETS

    root = tmp_path_factory.mktemp("toy_backbone")
    # The same backbone in every test session, so few-step numerics repeat: the shipped multilingual
    # tokenizer, because training a Unigram one differs from run to run (the tokenizers library's hash maps
    # are randomly seeded), and a seed, because the components' initial weights come from torch's global
    # generator, whose state would otherwise depend on which tests ran first.
    (root / "weights").mkdir()
    shutil.copy(ASSETS / "multilingual_tokenizer.json", root / "weights")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        pretrain_toy_backbone(smoke_config(), root / "work", root / "weights")
    return root / "weights"


@pytest.fixture(scope="session")
def smoke_backbone(smoke_backbone_dir):
    from xlcore.backbone.toy import load_toy_backbone

    return load_toy_backbone(smoke_backbone_dir)

"""The feature cache: exact (same features and losses as the uncached path), keyed, memory-mapped."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from xlcore.cache import FeatureCache, FrozenFeatures
from xlcore.errors import ConfigError, DataFormatError
from xlcore.methods._base import build_method

SPECS = {"pixels": "pixels", "x0": "diffusion_input", "image": "clip_image", "en": "clip_text:caption",
         "ml": "multilingual:caption"}


def test_cached_features_equal_the_uncached_ones(smoke_backbone, small_world, tmp_path):
    data = small_world.english_image_text(40)
    cached = FrozenFeatures(smoke_backbone, data, SPECS, cache=FeatureCache(tmp_path), batch_size=16)
    uncached = FrozenFeatures(smoke_backbone, data, SPECS)
    indices = [3, 17, 0, 39, 22]
    a = cached.features(cached.batch(indices))
    b = uncached.features(uncached.batch(indices))
    assert set(a) == set(b) == {"pixels", "x0", "image", "en.states", "en.pooler", "en.pooled", "ml.states", "ml.mask"}
    assert torch.equal(a["pixels"], b["pixels"]), "pixels round-trip exactly through uint8"
    assert torch.equal(a["ml.mask"], b["ml.mask"])
    for name in a:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-5, atol=1e-5, msg=name)
    assert all(isinstance(array, np.memmap) for array in cached.arrays.values()), "read memory-mapped"


@pytest.mark.parametrize("name,stage,language", [("trikd", "trikd", None), ("pea", "adapter", "de")])
def test_cached_and_uncached_training_losses_agree(name, stage, language, smoke_backbone, small_world, tmp_path):
    method = build_method(name, smoke_backbone, language=language)
    with_cache = method.task(stage, small_world, FeatureCache(tmp_path))
    without = method.task(stage, small_world)
    indices = list(range(8))
    torch.manual_seed(0)
    a = with_cache.loss(with_cache.inputs(with_cache.batch(indices)))
    torch.manual_seed(0)
    b = without.loss(without.inputs(without.batch(indices)))
    for term in a:
        torch.testing.assert_close(a[term], b[term], rtol=1e-4, atol=1e-5, msg=term)


def test_the_key_changes_with_the_backbone_the_data_and_the_specs(smoke_backbone, small_world, tmp_path):
    cache = FeatureCache(tmp_path)
    data = small_world.english_image_text(16)
    specs = {"image": "clip_image", "ml": "multilingual:caption"}
    FrozenFeatures(smoke_backbone, data, specs, cache=cache)
    FrozenFeatures(smoke_backbone, data, specs, cache=cache)  # reused, not rebuilt
    assert len(list(tmp_path.iterdir())) == 2  # one entry per feature
    FrozenFeatures(smoke_backbone, data, {"other": "clip_image"}, cache=cache)  # shared whatever its alias
    assert len(list(tmp_path.iterdir())) == 2
    FrozenFeatures(smoke_backbone, small_world.english_image_text(17), specs, cache=cache)
    assert len(list(tmp_path.iterdir())) == 4
    changed = copy.deepcopy(smoke_backbone.multilingual)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1.0
    enhanced = FrozenFeatures(smoke_backbone, data, specs, multilingual=changed, cache=cache)
    assert len(list(tmp_path.iterdir())) == 5  # only the multilingual feature depends on the encoder
    original = FrozenFeatures(smoke_backbone, data, specs, cache=cache)
    assert not np.array_equal(np.asarray(enhanced.arrays["ml.states"]), np.asarray(original.arrays["ml.states"]))


def test_an_interrupted_build_is_rebuilt_and_a_damaged_entry_is_reported(smoke_backbone, small_world, tmp_path):
    cache = FeatureCache(tmp_path)
    data = small_world.english_image_text(8)
    features = FrozenFeatures(smoke_backbone, data, {"image": "clip_image"}, cache=cache)
    entry = next(tmp_path.iterdir())
    (tmp_path / f"{entry.name}.tmp-999").mkdir()  # debris of a killed build is ignored
    (entry / "value.npy").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="delete the folder"):
        FrozenFeatures(smoke_backbone, data, {"image": "clip_image"}, cache=cache)
    del features


def test_unknown_feature_kinds_and_undescribed_datasets_are_clear_errors(smoke_backbone, small_world, tmp_path):
    with pytest.raises(ConfigError, match="unknown feature kind"):
        FrozenFeatures(smoke_backbone, small_world.english_image_text(4), {"x": "sift"})
    with pytest.raises(ConfigError, match="needs a field"):
        FrozenFeatures(smoke_backbone, small_world.english_image_text(4), {"x": "multilingual"})
    with pytest.raises(ConfigError, match="descriptor"):
        FrozenFeatures(smoke_backbone, [{"caption": "a"}], {"x": "multilingual:caption"}, cache=FeatureCache(tmp_path))


def test_a_feature_kind_registered_elsewhere_is_computed_and_cached(smoke_backbone, small_world, tmp_path):
    """A method module can add a frozen-feature kind with `@feature_kind` (no edit to xlcore.cache)."""
    from xlcore.cache import FEATURE_KINDS, feature_kind

    @feature_kind("caption_chars", field=True)
    def caption_chars(features, raw, field):
        return {"": torch.tensor([float(len(text)) for text in raw[field]])}

    try:
        data = small_world.english_image_text(8)
        cached = FrozenFeatures(smoke_backbone, data, {"n": "caption_chars:caption"}, cache=FeatureCache(tmp_path))
        values = cached.features(cached.batch([0, 1, 2]))["n"]
        assert values.tolist() == [float(len(data[i]["caption"])) for i in range(3)]
        with pytest.raises(ConfigError, match="registered twice"):
            feature_kind("caption_chars", field=True)(caption_chars)
    finally:
        del FEATURE_KINDS["caption_chars"]

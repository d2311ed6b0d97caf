"""The toy backbone: offline loading, frozen weights with a stable fingerprint, tokenizers, sampling."""

import json
import shutil
import time

import pytest
import torch

from xlcore.backbone import quality
from xlcore.backbone.pipeline import PixelTextToImagePipeline
from xlcore.backbone.toy import ASSETS, load_toy_backbone
from xlcore.errors import DataFormatError, MissingWeightsError
from xlcore.world import CULTURE_SHAPES, get_grammar
from xlcore.world.lexicon import all_captions


def test_the_shipped_backbone_loads_offline_quickly_and_frozen():
    start = time.perf_counter()
    backbone = load_toy_backbone()
    assert time.perf_counter() - start < 30
    info = json.loads((ASSETS / "backbone.json").read_text())
    assert {"clip", "scorer", "multilingual", "unet"} <= set(info["components"])
    assert info["data_seed"] == 0 and "make pretrain-toy" in info["reproduce"]
    for name, module in backbone.named_modules_dict().items():
        assert not any(p.requires_grad for p in module.parameters()), name
        assert not module.training, name
    total_bytes = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert total_bytes < 25 * 2**20, f"shipped backbone is {total_bytes / 2**20:.1f} MB"


def test_fingerprint_is_stable_under_use_and_sensitive_to_any_change(smoke_backbone, small_world):
    before = smoke_backbone.fingerprint()
    states, pooled = smoke_backbone.encode_english(["A small red circle on the left", ""])
    assert states.shape == (2, 24, 128) and pooled.shape == (2, 128)
    smoke_backbone.encode_images(torch.rand(3, 3, 32, 32))
    smoke_backbone.encode_multilingual(["Ein roter Kreis", "赤い円"])
    quality.generate(smoke_backbone, states, [0, 1], guidance_scale=2.0, steps=2)
    assert smoke_backbone.fingerprint() == before
    with torch.no_grad():
        smoke_backbone.unet.conv_out.bias[0] += 1e-3
    assert smoke_backbone.fingerprint() != before
    fresh = load_toy_backbone(smoke_backbone.info["directory"])
    assert smoke_backbone.fingerprint(("clip",)) == fresh.fingerprint(("clip",))  # only the UNet changed
    assert fresh.fingerprint() == before


def test_tokenizers_cover_every_word_the_world_writes(smoke_backbone):
    english, multi = smoke_backbone.tokenizer, smoke_backbone.multilingual_tokenizer
    unknown = english.unk_token_id
    for caption in all_captions(get_grammar("en")):
        ids = english(caption)["input_ids"]
        assert unknown not in ids, caption
        assert ids[0] == english.bos_token_id and ids[-1] == english.eos_token_id
        assert len(ids) <= english.model_max_length
    for lang in ("de", "fr", "cs", "zh", "ja"):
        for caption in list(all_captions(get_grammar(lang), CULTURE_SHAPES[lang]))[::97]:
            ids = multi(caption)["input_ids"]
            assert multi.unk_token_id not in ids, caption
            assert len(ids) <= multi.model_max_length, (caption, len(ids))


def test_the_same_seed_gives_the_same_image_whatever_the_batch(smoke_backbone):
    states, _ = smoke_backbone.encode_english(["A red circle to the left of a blue square", "A big black star at the top"])
    together = quality.generate(smoke_backbone, states, [7, 8], guidance_scale=1.0, steps=3)
    alone = quality.generate(smoke_backbone, states[1:], [8], guidance_scale=1.0, steps=3)
    torch.testing.assert_close(together[1:], alone, rtol=0, atol=1e-5)
    assert together.shape == (2, 3, 32, 32) and 0 <= together.min() and together.max() <= 1


def test_guidance_without_negative_embeddings_is_a_clear_error(smoke_backbone):
    pipe = PixelTextToImagePipeline(smoke_backbone.unet, smoke_backbone.sample_scheduler)
    states, _ = smoke_backbone.encode_english(["A red circle on the left"])
    with pytest.raises(ValueError, match="negative_prompt_embeds"):
        pipe(states, guidance_scale=3.0, num_inference_steps=2)


def test_missing_or_corrupt_weights_name_the_file(smoke_backbone_dir, tmp_path):
    broken = tmp_path / "weights"
    shutil.copytree(smoke_backbone_dir, broken)
    (broken / "unet.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="unet.safetensors"):
        load_toy_backbone(broken)
    data = (smoke_backbone_dir / "unet.safetensors").read_bytes()
    (broken / "unet.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataFormatError, match="unet.safetensors"):
        load_toy_backbone(broken)


def test_the_backbone_casts_to_the_working_dtype_and_keeps_the_scorer_in_float32(smoke_backbone_dir):
    backbone = load_toy_backbone(smoke_backbone_dir).to(dtype=torch.bfloat16)
    assert backbone.dtype == torch.bfloat16
    assert next(backbone.unet.parameters()).dtype == torch.bfloat16
    assert next(backbone.clip.parameters()).dtype == torch.bfloat16
    assert next(backbone.scorer.parameters()).dtype == torch.float32
    states, pooled = backbone.encode_english(["A small red circle on the left"])
    assert states.dtype == torch.bfloat16 and pooled.shape == (1, 128)
    assert backbone.encode_images(torch.rand(2, 3, 32, 32)).dtype == torch.bfloat16


def test_load_backbone_dispatches_by_preset():
    from xlcore.backbone import load_backbone
    from xlcore.errors import ConfigError

    assert load_backbone("toy").preset == "toy"
    with pytest.raises(ConfigError, match="presets with a backbone: sd15, toy"):
        load_backbone("sdxl")


def test_translation_language_modelling_masks_a_pair_with_positions_restarting_at_the_second_sentence(
        smoke_backbone, small_world):
    """The aligned encoder's pretraining batch (issue 20): a share of TLM pairs, `<s> A </s><s> B </s>` with
    B's positions restarting, masked as one sequence; without parallel text it is masked language modelling."""
    from transformers import XLMRobertaForMaskedLM

    from xlcore.backbone.toy import MaskedLanguageModelTask, multilingual_config

    tokenizer = smoke_backbone.multilingual_tokenizer
    model = XLMRobertaForMaskedLM(multilingual_config(len(tokenizer)))
    task = MaskedLanguageModelTask(model, tokenizer, small_world, per_language=16, parallel_per_language=8,
                                   tlm_share=0.5)
    torch.manual_seed(0)
    input_ids, attention_mask, position_ids, labels, sides = task.batch(list(range(8)))
    assert sides is None  # no translation ranking asked
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    for row in range(8):
        starts = (position_ids[row] == pad + 1).nonzero().flatten().tolist()
        assert len(starts) == (2 if row < 4 else 1)  # the first half of the batch are pairs
        assert all(labels[row, s] == -100 and (input_ids[row, s] == bos) for s in starts)  # <s> never masked
        assert ((position_ids[row] == pad) == (attention_mask[row] == 0)).all()
    assert labels[:4].ne(-100).any() and task.loss((input_ids, attention_mask, position_ids, labels, sides))["loss"].isfinite()
    whole = MaskedLanguageModelTask(model, tokenizer, small_world, per_language=16, parallel_per_language=8,
                                    whole_word_masking=True)
    torch.manual_seed(0)
    ids, _, _, word_labels, _ = whole.batch(list(range(8)))
    for row, sample in enumerate(whole._segments(list(range(8)))):
        start = 0
        for segment_ids, word_ids in sample:  # a word's pieces are all labelled or none is
            for word in set(w for w in word_ids if w is not None):
                picked = {bool(word_labels[row, start + k] != -100) for k, w in enumerate(word_ids) if w == word}
                assert len(picked) == 1
            start += len(segment_ids)
    assert word_labels.ne(-100).any()
    ranked = MaskedLanguageModelTask(model, tokenizer, small_world, per_language=16, parallel_per_language=8,
                                     translation_ranking_weight=0.1)
    batch = ranked.batch(list(range(8)))
    english, target = batch[4]
    assert len(english["input_ids"]) == len(target["input_ids"]) == 4  # the four TLM pairs, one sentence each
    terms = ranked.loss(batch)
    assert set(terms) == {"loss", "mlm", "ranking"}
    assert terms["loss"].item() == pytest.approx(terms["mlm"].item() + 0.1 * terms["ranking"].item(), rel=1e-5)
    mlm_only = MaskedLanguageModelTask(model, tokenizer, small_world, per_language=16)
    assert mlm_only.tlm_share == 0.0 and not mlm_only.pairs
    assert all((p == pad + 1).sum() == 1 for p in mlm_only.batch(list(range(4)))[2])


def test_the_toy_language_model_predicts_the_next_token_and_learns_translations_as_continuations(smoke_backbone,
                                                                                                small_world):
    """The decoder the LLM connector reads (issue 26): its loss is Qwen2ForCausalLM's own on the same batch (the
    head applied only where a token is predicted); a share of each batch is a translation pair as one sequence;
    translation ranking on the two sentences read alone; the shipped component loads as `toy:llm`."""
    from transformers import Qwen2ForCausalLM

    from xlcore.backbone.toy import CausalLanguageModelTask, language_model_config

    tokenizer = smoke_backbone.multilingual_tokenizer
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(language_model_config(len(tokenizer))).eval()
    task = CausalLanguageModelTask(model, tokenizer, small_world, per_language=16, parallel_per_language=8,
                                   translation_ranking_weight=0.1)
    input_ids, attention_mask, sides = batch = task.batch(list(range(8)))
    starts = (input_ids == tokenizer.bos_token_id).sum(1)
    assert starts[:4].tolist() == [2] * 4 and starts[4:].tolist() == [1] * 4  # pairs first, as one sequence
    with torch.no_grad():
        terms = task.loss(batch)
        reference = model(input_ids=input_ids, attention_mask=attention_mask,
                          labels=input_ids.masked_fill(attention_mask == 0, -100)).loss
    assert terms["lm"].item() == pytest.approx(reference.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["lm"].item() + 0.1 * terms["ranking"].item(), rel=1e-5)
    assert len(sides[0]["input_ids"]) == 4
    from xlcore.backbone.toy import load_toy_multilingual_encoder

    loaded = load_toy_multilingual_encoder("toy:llm", smoke_backbone.info["directory"])
    assert type(loaded).__name__ == "Qwen2Model" and not any(p.requires_grad for p in loaded.parameters())

"""Each upstream quirk that is an option changes the loss or the trained set as documented (issue:
faithful at Stable Diffusion scale): mCLIP as published, TTC's released logit scale, PEA's hybrid
masking, AltCLIP's teacher stage without dropout."""

import dataclasses
import math

import pytest
import torch

from xlcore.config import GenerationEvalConfig, apply_smoke
from xlcore.errors import ConfigError
from xlcore.evaluate import evaluate_system
from xlcore.methods import trikd as trikd_module
from xlcore.methods._base import build_method, default_config


def make(name, backbone, **options):
    config = dataclasses.replace(apply_smoke(default_config(name, backbone.preset)), **options)
    return build_method(name, backbone, config, language="de" if name == "pea" else None)


def batch_for(method, stage, world, n=4):
    torch.manual_seed(0)
    task = method.task(stage, world)
    return task.inputs(task.batch(list(range(n))))


def test_mclip_as_published_trains_only_its_projectors_and_is_a_retrieval_model(smoke_backbone, small_world):
    pure = make("trikd", smoke_backbone, mte=False, token_alignment_weight=0.0)
    assert {n.split(".")[0] for n in pure.trainable_parameters("trikd")} == {"x_projector", "clip_projector",
                                                                               "logit_scale"}
    terms = pure.loss(batch_for(pure, "trikd", small_world), "trikd")
    assert set(terms) == {"itc", "ttc", "logit_scale", "loss"}  # no token term
    assert "retrieval only" in pure.label and not pure.draws
    measurements, generation = evaluate_system(pure, small_world, GenerationEvalConfig(
        n_prompts=2, languages=("de",), steps=1, batch_size=2, n_culture_prompts=0, concept_samples=0),
        captions_per_image=1, progress=False)
    assert measurements and all("retrieval" in m.benchmark for m in measurements) and not generation.images
    extended = make("trikd", smoke_backbone, mte=False)
    assert extended.draws and "token_alignment" in extended.loss(batch_for(extended, "trikd", small_world), "trikd")


def test_ttc_takes_the_released_logit_scale_only_when_asked(smoke_backbone, small_world, monkeypatch):
    scales = []
    original = trikd_module.symmetric_info_nce

    def spy(a, b, scale):
        scales.append(float(torch.as_tensor(scale).detach()))
        return original(a, b, scale)

    monkeypatch.setattr(trikd_module, "symmetric_info_nce", spy)
    for setting in ("temperature", "released"):
        method = make("trikd", smoke_backbone, mte=False, ttc_logit_scale=setting)
        method.loss(batch_for(method, "trikd", small_world), "trikd")
    # per loss call: ITC's learnable scale, then TTC's
    assert scales[1] == pytest.approx(1 / 0.07) and scales[3] == pytest.approx(math.log(1 / 0.07))
    assert "released" in method.label
    with pytest.raises(ConfigError, match="ttc_logit_scale"):
        make("trikd", smoke_backbone, ttc_logit_scale="other")


@pytest.mark.parametrize("masking", ["denoise_all", "upstream"])
def test_pea_hybrid_masking_decides_which_items_get_which_terms(smoke_backbone, small_world, masking):
    method = make("pea", smoke_backbone, hybrid_masking=masking, caption_dropout=0.0)
    batch = batch_for(method, "adapter", small_world)
    native = dict(batch, has_english=torch.zeros_like(batch["has_english"]))  # no English caption: native items
    translated = dict(batch, has_english=torch.ones_like(batch["has_english"]))
    torch.manual_seed(1)
    on_native = method.loss(native, "adapter")
    torch.manual_seed(1)
    on_translated = method.loss(translated, "adapter")
    # native items never get the distillation terms (there is no teacher)
    assert on_native["output_kd"] == 0 and on_native["feature_kd"] == 0 and on_native["denoise"] > 0
    assert on_translated["output_kd"] > 0 and on_translated["feature_kd"] > 0
    if masking == "upstream":  # translated items get no denoising term
        assert on_translated["denoise"] == 0
        assert "upstream hybrid masking" in method.label
    else:
        assert on_translated["denoise"] > 0
    with pytest.raises(ConfigError, match="hybrid_masking"):
        make("pea", smoke_backbone, hybrid_masking="other").loss(batch, "adapter")


def test_altclip_teacher_stage_without_dropout_is_deterministic_and_restores_it(smoke_backbone, small_world):
    method = make("altclip", smoke_backbone, teacher_dropout=0.0)
    batch = batch_for(method, "teacher", small_world)
    method.student.train()
    before = [m.p for m in method.student.modules() if isinstance(m, torch.nn.Dropout)]
    assert any(p > 0 for p in before)
    first, second = (method.loss(batch, "teacher")["loss"].item() for _ in range(2))
    assert first == second
    assert [m.p for m in method.student.modules() if isinstance(m, torch.nn.Dropout)] == before
    default = make("altclip", smoke_backbone)
    default.student.train()
    assert default.loss(batch, "teacher")["loss"].item() != default.loss(batch, "teacher")["loss"].item()


def test_upstream_mte_trains_the_decoder_then_the_encoder_layers_and_keeps_embeddings_frozen(smoke_backbone,
                                                                                             small_world, tmp_path):
    from xlcore.experiment import train_method
    from xlcore.train import TrainConfig

    method = make("trikd", smoke_backbone, mte=True, mte_objective="upstream", mte_decoder_layers=1)
    assert method.stages == ("mte_translation", "mte", "trikd")
    decoder_only = method.trainable_parameters("mte_translation")
    assert decoder_only and all(n.startswith("mte_decoder.") for n in decoder_only)
    second = method.trainable_parameters("mte")
    assert any(n.startswith("encoder.") for n in second) and any(n.startswith("mte_decoder.") for n in second)
    assert not any("embeddings" in n for n in second), "embeddings stay frozen (upstream embfix / xlmr_2stage)"
    assert not any(n.startswith("mte_decoder") for n in method.trainable_parameters("trikd"))
    terms = method.loss(batch_for(method, "mte_translation", small_world), "mte_translation")
    assert set(terms) == {"translation", "loss"} and terms["loss"] > 0
    terms = method.loss(batch_for(method, "mte", small_world), "mte")
    assert set(terms) == {"translation", "contrastive", "loss"}
    expected = terms["translation"] + 2.0 * terms["contrastive"] / 4  # fairseq's normalisation, batch of 4
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # one step of each stage: the encoder is untouched by the first, its embeddings by both
    encoder = {n: p.detach().clone() for n, p in method.encoder.named_parameters()}
    backbone = smoke_backbone.fingerprint()
    step = TrainConfig(steps=1, batch_size=4, warmup_steps=0, lr=1e-2)
    train_method(method, small_world, tmp_path, train_configs={"mte_translation": step, "mte": step, "trikd": step})
    changed = {n for n, p in method.encoder.named_parameters() if not torch.equal(p, encoder[n])}
    assert changed and not any("embeddings" in n for n in changed)
    assert smoke_backbone.fingerprint() == backbone
    assert "upstream translation + contrastive" in method.label
    sd15 = default_config("mclip_plus", "sd15")  # sd15 runs upstream's objective at its own sizes
    assert sd15.mte_objective == "upstream" and sd15.mte_decoder_layers == 12
    assert sd15.mte_translation_train.lr == 5e-4 and default_config("mclip_plus").mte_objective == "contrastive"


@pytest.mark.parametrize("name", ["pea", "mulan"])
def test_a_method_reads_its_papers_encoder_on_a_real_preset(name, tmp_path, smoke_backbone):
    """MuLan and PEA can read another multilingual encoder than the backbone's (by Hugging Face id or folder,
    from disk only): built here from a config of another width, saved with a tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs, byte_level_multilingual_tokenizer
    from xlcore.config import WorldConfig
    from xlcore.errors import MissingWeightsError
    from xlcore.world import World

    backbone = build_sd15_backbone_from_configs(small=True, device="cpu")
    tokenizer = byte_level_multilingual_tokenizer()
    wider = backbone.multilingual.config.hidden_size + 16
    encoder = XLMRobertaModel(XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=wider, num_hidden_layers=1,
                                               num_attention_heads=2, intermediate_size=64, pad_token_id=1),
                              add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    fingerprint = backbone.fingerprint()
    method = make(name, backbone, multilingual_encoder=str(tmp_path / "encoder"))
    assert method.backbone.multilingual.config.hidden_size == wider != backbone.multilingual.config.hidden_size
    assert method.backbone.info["ids"]["multilingual"] == str(tmp_path / "encoder")
    assert f"encoder {tmp_path / 'encoder'}" in method.label  # the rows say which encoder they read
    world = World(apply_smoke(WorldConfig(image_size=64)))
    stage = method.stages[0]
    task = method.task(stage, world)
    terms = task.loss(task.inputs(task.batch([0, 1])))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert method.encode(["A small red circle"], "de" if name == "pea" else "en").token_states.shape[-1] == \
        backbone.unet.config.cross_attention_dim
    assert backbone.fingerprint() == fingerprint and backbone.multilingual is not method.backbone.multilingual
    with pytest.raises(MissingWeightsError, match="no-such/encoder"):
        make(name, backbone, multilingual_encoder="no-such/encoder")
    with pytest.raises(ConfigError, match="unknown toy multilingual encoder"):
        make(name, smoke_backbone, multilingual_encoder=str(tmp_path / "encoder"))


@pytest.mark.parametrize("name", ["mulan", "trikd"])
def test_the_english_only_methods_can_read_the_toys_unaligned_encoder(name, smoke_backbone, small_world):
    """`toy:unaligned` is the toy's encoder pretrained without parallel text (issue 20): the same architecture
    and tokenizer, its own weights, frozen, named in the rows' label."""
    from xlcore.backbone.base import module_fingerprint

    method = make(name, smoke_backbone, multilingual_encoder="toy:unaligned")
    encoder = method.backbone.multilingual
    assert encoder is not smoke_backbone.multilingual and not any(p.requires_grad for p in encoder.parameters())
    assert module_fingerprint({"multilingual": encoder}) != smoke_backbone.fingerprint(("multilingual",))
    assert method.backbone.info["ids"]["multilingual"] == "toy:unaligned" and "encoder toy:unaligned" in method.label
    stage = method.stages[-1]
    terms = method.loss(batch_for(method, stage, small_world), stage)
    assert torch.isfinite(terms["loss"])


def test_an_open_clip_text_tower_missing_from_disk_is_named():
    from xlcore.backbone.sd15 import load_multilingual_encoder
    from xlcore.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="xlm-roberta-large-ViT-H-14.*frozen_laion5b_s13b_b90k"):
        load_multilingual_encoder("open_clip:xlm-roberta-large-ViT-H-14/frozen_laion5b_s13b_b90k", device="cpu")


def test_a_method_reading_its_own_encoder_saves_and_loads_on_the_backbone_it_was_given(smoke_backbone, tmp_path):
    """Its saved description names the backbone it was built on (not the view with its own encoder), so it loads
    back onto that backbone and encodes exactly as before (found with the LLM connector, issue 26)."""
    from xlcore.methods._base import load_method

    method = make("mulan", smoke_backbone, multilingual_encoder="toy:unaligned")
    method.save(tmp_path / "mulan")
    loaded = load_method(tmp_path / "mulan", smoke_backbone)
    texts = ["ein roter Kreis", ""]
    assert torch.equal(loaded.encode(texts, "de").token_states, method.encode(texts, "de").token_states)
    # ... and says which encoder weights it was trained on: other ones are refused
    import json

    meta_path = tmp_path / "mulan" / "method.json"
    meta = json.loads(meta_path.read_text())
    assert meta["own_encoder"]["spec"] == "toy:unaligned"
    meta["own_encoder"]["fingerprint"] = "0" * 16
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="other weights than the ones here"):
        load_method(tmp_path / "mulan", smoke_backbone)
    from xlcore.cell import own_encoder_identity

    assert own_encoder_identity(method.config, "toy", smoke_backbone.info["directory"]).startswith("toy:unaligned:")
    assert own_encoder_identity(make("mulan", smoke_backbone).config, "toy") is None

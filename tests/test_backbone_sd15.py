"""The sd15 preset without its weights: parameter counts on the meta device, shapes and dtypes on the
scaled-down configs, the offline tokenizers, and a clean error when the weights are not cached."""

import huggingface_hub.constants
import open_clip
import pytest
import torch
from diffusers import DDPMScheduler

from xlcore.backbone import sd15
from xlcore.errors import ConfigError, MissingWeightsError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The small models are per-operation overhead, not arithmetic: a second thread only adds OpenMP
    synchronisation, which on a busy 2-core machine made a UNet forward 0.03 s -> 0.5-6 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def meta_architectures():
    """Both multilingual variants at full size on the meta device (nothing allocated)."""
    return {name: sd15.sd15_architectures(name) for name in sd15.MULTILINGUAL_CONFIGS}


@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def small_backbone(request):
    return sd15.build_sd15_backbone_from_configs(small=True, device="cpu", dtype=request.param)


# --------------------------------------------------------------------------------------------------
# Architectures at full size


@pytest.mark.parametrize("multilingual", list(sd15.MULTILINGUAL_CONFIGS))
def test_parameter_counts_equal_the_published_ones(meta_architectures, multilingual):
    modules = meta_architectures[multilingual]
    assert all(p.device.type == "meta" for m in modules.values() for p in m.parameters())
    counts = sd15.parameter_counts(modules)
    published = sd15.PUBLISHED_PARAMETER_COUNTS
    assert counts == {
        "unet": 859_520_964, "vae": 83_653_863, "clip": 427_616_513, "clip.text": 123_060_480,
        "clip.vision": published["clip.vision"], "multilingual": published[multilingual],
    }
    assert counts["multilingual"] == {"xlm-roberta-base": 278_043_648, "xlm-roberta-large": 559_890_432}[multilingual]
    # CLIPModel = both towers + the two projections into the 768-wide joint space + the logit scale.
    assert counts["clip"] == counts["clip.text"] + counts["clip.vision"] + 768 * 768 + 1024 * 768 + 1


def test_unet_is_conditioned_on_the_clip_text_tower(meta_architectures):
    modules = meta_architectures["xlm-roberta-base"]
    unet, clip = modules["unet"], modules["clip"]
    assert unet.config.cross_attention_dim == clip.config.text_config.hidden_size == 768
    text = sd15.parameter_counts(modules)["clip.text"]
    assert 122e6 < text < 124e6  # SD 1.5's "123M text encoder"
    # DESIGN.md section 5, AltDiffusion on SD 1.5: attn2.to_k + to_v is 19.17M, all of attn2 43.96M.
    params = dict(unet.named_parameters())
    assert sum(p.numel() for n, p in params.items() if ".attn2.to_k." in n or ".attn2.to_v." in n) == 19_169_280
    assert sum(p.numel() for n, p in params.items() if ".attn2." in n) == 43_962_560


def test_full_size_shapes_propagate_on_meta(meta_architectures):
    """Meta tensors carry shapes through the real-size forward passes without allocating anything."""
    modules = meta_architectures["xlm-roberta-base"]
    meta = {"device": "meta"}
    with torch.no_grad():
        text = modules["clip"].text_model(input_ids=torch.zeros(2, 77, dtype=torch.long, **meta))
        eps = modules["unet"](torch.empty(2, 4, 64, 64, **meta), torch.tensor([1, 999], **meta),
                              encoder_hidden_states=text.last_hidden_state).sample
        image = modules["vae"].decode(torch.empty(2, 4, 64, 64, **meta)).sample
        vision = modules["clip"].vision_model(pixel_values=torch.empty(2, 3, 224, 224, **meta))
        states = modules["multilingual"](input_ids=torch.ones(2, 512, dtype=torch.long, **meta)).last_hidden_state
    assert text.last_hidden_state.shape == (2, 77, 768) and eps.shape == (2, 4, 64, 64)
    assert image.shape == (2, 3, 512, 512) and vision.pooler_output.shape == (2, 1024)
    assert states.shape == (2, 512, 768)


def test_pooler_is_the_only_difference_of_the_backbone_encoder():
    counts = sd15.parameter_counts(sd15.sd15_architectures(pooler=False))
    assert counts["multilingual"] == 278_043_648 - (768 * 768 + 768)


def test_small_configs_keep_the_block_structure(meta_architectures):
    full = meta_architectures["xlm-roberta-base"]
    small = sd15.sd15_architectures(small=True)
    for name in ("unet", "vae"):  # same module names, so name-based selections (attn2.to_k) behave the same
        assert {n for n, _ in full[name].named_parameters()} == {n for n, _ in small[name].named_parameters()}
    assert small["unet"].config.cross_attention_dim == small["clip"].config.text_config.hidden_size
    assert small["clip"].config.text_config.vocab_size == full["clip"].config.text_config.vocab_size
    assert small["multilingual"].config.vocab_size == full["multilingual"].config.vocab_size
    assert sd15.sd15_configs()["unet"] == sd15.UNET_CONFIG  # the small overrides never leak into the originals


def test_unknown_multilingual_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="xlm-roberta-base, xlm-roberta-large"):
        sd15.sd15_architectures("mbert")
    with pytest.raises(ConfigError):
        sd15.load_sd15_backbone("mbert")


def test_schedulers_follow_sd15_training_config():
    noise, sample = sd15.make_schedulers()
    for scheduler in (noise, sample):
        cfg = scheduler.config
        assert (cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end, cfg.beta_schedule) == (
            1000, 0.00085, 0.012, "scaled_linear")
        assert cfg.prediction_type == "epsilon" and cfg.steps_offset == 1
    assert type(noise).__name__ == "DDPMScheduler" and type(sample).__name__ == "DDIMScheduler"
    sample.set_timesteps(50)
    assert sample.timesteps[0].item() == 981  # 20-step spacing shifted by steps_offset 1


# --------------------------------------------------------------------------------------------------
# Tokenizers


def test_offline_clip_tokenizer_matches_open_clip():
    tokenizer = sd15.clip_tokenizer_offline()
    assert tokenizer.model_max_length == 77 and len(tokenizer) == 49408
    text_config = sd15.CLIP_CONFIG["text_config"]
    assert tokenizer.bos_token_id == text_config["bos_token_id"] == 49406
    assert tokenizer.eos_token_id == text_config["eos_token_id"] == 49407
    texts = ["a photo of a cat", "A Red circle, left of the BLUE square!!", "don't stop: 123 café naïve 🙂",
             "ein roter Kreis über dem Quadrat", "赤い丸", "word " * 100]
    ours = tokenizer(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    theirs = open_clip.get_tokenizer("ViT-L-14")(texts)
    # open_clip pads with 0, the hub tokenizer with <|endoftext|>; the real tokens agree.
    assert torch.equal(ours["attention_mask"].bool(), theirs != 0)
    assert torch.equal(ours["input_ids"] * ours["attention_mask"], theirs)


def test_byte_level_stand_in_keeps_xlmr_conventions():
    tokenizer = sd15.byte_level_multilingual_tokenizer()
    texts = ["ein roter Kreis", "赤い丸は左にある"]
    out = tokenizer(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == (2, 32) and tokenizer.model_max_length == 77  # CLIP's length, as AltDiffusion's XLM-R tokenizer
    assert (ids[:, 0] == 0).all() and (ids[mask == 0] == 1).all()  # <s> first, <pad> = 1 after the text
    assert (ids[torch.arange(2), mask.sum(1) - 1] == 2).all()  # </s> closes each text
    assert ids.max() < sd15.MULTILINGUAL_CONFIGS["xlm-roberta-base"]["vocab_size"]
    assert tokenizer.batch_decode(ids, skip_special_tokens=True) == texts


# --------------------------------------------------------------------------------------------------
# Forward passes on the scaled-down configs, float32 and bfloat16


def test_small_backbone_forward_shapes_and_dtypes(small_backbone):
    bb, dtype = small_backbone, small_backbone.dtype
    width = bb.clip.config.text_config.hidden_size
    assert bb.image_size == 64 and bb.preset == "sd15" and bb.scorer is None
    params = [p for module in bb.named_modules_dict().values() for p in module.parameters()]
    assert all(p.dtype == dtype and not p.requires_grad for p in params)

    states, pooled = bb.encode_english(["a red circle", "two blue squares"])
    assert states.shape == (2, 77, width) and pooled.shape == (2, bb.clip.config.projection_dim)
    assert states.dtype == pooled.dtype == dtype

    latents = torch.randn(2, 4, 8, 8, dtype=dtype)
    with torch.no_grad():
        eps = bb.unet(latents, torch.tensor([10, 900]), encoder_hidden_states=states).sample
        images = bb.vae.decode(latents / bb.vae.config.scaling_factor).sample
    assert eps.shape == latents.shape and eps.dtype == dtype
    assert images.shape == (2, 3, bb.image_size, bb.image_size) and images.dtype == dtype
    assert torch.isfinite(eps.float()).all() and torch.isfinite(images.float()).all()

    assert bb.encode_images(torch.rand(2, 3, 64, 64)).shape == (2, bb.clip.config.projection_dim)
    hidden, mask = bb.encode_multilingual(["ein roter Kreis", "赤い丸"])
    assert hidden.shape == (2, 77, bb.multilingual.config.hidden_size) and hidden.dtype == dtype
    assert mask.shape == (2, 77)
    # Images of any size reach the VAE at the backbone's resolution: the latents are always image_size / 8
    for side in (32, 64, 96):
        assert bb.diffusion_input(torch.rand(1, 3, side, side)).shape == (1, 4, bb.image_size // 8, bb.image_size // 8)


def test_random_weights_depend_only_on_the_seed():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = sd15.build_sd15_backbone_from_configs(small=True, device="cpu", seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random state is untouched
    b = sd15.build_sd15_backbone_from_configs(small=True, device="cpu", seed=0)
    c = sd15.build_sd15_backbone_from_configs(small=True, device="cpu", seed=1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.info["source"] == "configs" and "stand-in" in a.info["multilingual_tokenizer"]


# --------------------------------------------------------------------------------------------------
# Loading by id


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache. huggingface_hub reads its paths at import, hence the constants too."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path


# diffusers' loader passes an argument huggingface_hub deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_missing_weights_name_the_model_id(empty_hf_cache):
    with pytest.raises(MissingWeightsError) as info:
        sd15.load_sd15_backbone(device="cpu")
    assert sd15.SD15_ID in str(info.value) and info.value.model_id == sd15.SD15_ID
    assert "huggingface-cli download" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)  # the library's error stays available for debugging


def test_each_missing_repo_is_named_and_ids_can_be_overridden(empty_hf_cache, monkeypatch):
    # Pretend the SD repo's schedule is cached, so loading gets as far as the CLIP tokenizer.
    class CachedSchedule(DDPMScheduler):
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return DDPMScheduler.from_config(sd15.SCHEDULER_CONFIG)

    monkeypatch.setattr(sd15, "DDPMScheduler", CachedSchedule)
    with pytest.raises(MissingWeightsError, match="openai/clip-vit-large-patch14"):
        sd15.load_sd15_backbone(device="cpu")
    with pytest.raises(MissingWeightsError, match="mirror/clip-l"):
        sd15.load_sd15_backbone(device="cpu", clip_id="mirror/clip-l")


def test_incomplete_tokenizer_download_is_reported(tmp_path):
    # transformers 5 builds an empty tokenizer, without error, when only the tokenizer config is there.
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "CLIPTokenizer"}')
    with pytest.raises(MissingWeightsError, match="incomplete"):
        sd15._load_tokenizer("CLIP tokenizer", str(tmp_path), local_files_only=True)


def test_english_states_equal_the_stock_pipelines_encode_prompt():
    """sd15's English conditioning is diffusers' StableDiffusionPipeline.encode_prompt exactly: unmasked
    CLIP states over the 77 padded positions (with the mask, the padding positions' states differ)."""
    from diffusers import StableDiffusionPipeline

    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs

    bb = build_sd15_backbone_from_configs(small=True, device="cpu")
    # CLIPModel's text tower is a CLIPTextModel (transformers 5), what the pipeline's text_encoder is
    pipe = StableDiffusionPipeline(vae=bb.vae, text_encoder=bb.clip.text_model, tokenizer=bb.tokenizer, unet=bb.unet,
                                   scheduler=bb.sample_scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    prompts = ["a red circle on the left", "two small blue squares above a large yellow star", ""]
    with torch.no_grad():
        expected, _ = pipe.encode_prompt(prompts, "cpu", 1, False)
    states, _ = bb.encode_english(prompts)
    torch.testing.assert_close(states, expected, rtol=1e-5, atol=1e-5)
    masked = bb.clip.text_model(**{k: v for k, v in bb.tokenize_english(prompts).items()
                                   if k in ("input_ids", "attention_mask")}).last_hidden_state
    assert not torch.allclose(masked, expected, atol=1e-4)  # so the test can tell the two apart

"""The method table: every registered method and stage, on the tiny smoke-pretrained backbone.

For each method: one training step changes exactly the declared parameters of the stage and leaves the
backbone's fingerprint identical; the loss goes down on a fixed batch; save -> load round-trips
`encode` exactly (and the negative prompt); an interrupted run resumes from its checkpoint and ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xlcore.backbone import quality
from xlcore.config import apply_smoke, to_dict
from xlcore.errors import ConfigError, DataFormatError, MissingWeightsError, UnknownLanguageError
from xlcore.experiment import train_method
from xlcore.methods._base import Method, build_method, cross_attention_modules, default_config, load_method
from xlcore.registry import METHODS
from xlcore.train import TrainConfig, Trainer

ALL = METHODS.names()
OPTIONS = {"trikd": {"mte": True}}  # turn optional stages on so the table covers them
PROMPTS = ["A small red circle on the left", "Ein kleiner roter Kreis links", ""]


def make(name: str, backbone, **options) -> Method:
    cls = METHODS.get(name)
    config = dataclasses.replace(apply_smoke(default_config(name, backbone.preset)), **{**OPTIONS.get(name, {}), **options})
    return build_method(name, backbone, config, language="de" if cls.per_language else None)


def one_step_config(**changes) -> TrainConfig:
    base = TrainConfig(steps=1, batch_size=8, lr=1e-2, weight_decay=0.1, warmup_steps=0, max_grad_norm=0.0,
                       schedule="constant", checkpoint_every_steps=1000, log_every=1)
    return dataclasses.replace(base, **changes)


def snapshot(method: Method) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in method.named_parameters()}


def test_every_method_of_the_issue_is_registered():
    assert {"trikd", "altclip", "altdiffusion", "iap", "mulan", "pea", "full_finetune", "translate",
            "translate_oracle", "untrained"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_one_step_changes_exactly_the_declared_parameters(name, smoke_backbone, small_world, tmp_path):
    method = make(name, smoke_backbone)
    fingerprint = smoke_backbone.fingerprint()
    if not method.stages:
        assert method.trainable_parameters() == {}
    for stage in method.stages:
        before = snapshot(method)
        declared = set(method.trainable_parameters(stage))
        assert declared, f"{name}/{stage} declares no parameters"
        Trainer(method.task(stage, small_world), one_step_config(), tmp_path / stage).fit()
        changed = {n for n, p in method.named_parameters() if not torch.equal(p, before[n])}
        assert changed <= declared, f"{name}/{stage} changed undeclared {sorted(changed - declared)[:5]}"
        # Every declared parameter moved (weight decay moves even those with a zero gradient), except
        # 1-d parameters (no decay) that the loss does not reach.
        unmoved = {n for n in declared - changed if before[n].ndim >= 2}
        assert not unmoved, f"{name}/{stage} declared but did not train {sorted(unmoved)[:5]}"
        assert smoke_backbone.fingerprint() == fingerprint, f"{name}/{stage} changed the backbone"
    for module in smoke_backbone.named_modules_dict().values():
        assert not any(p.requires_grad for p in module.parameters())


SLOW_STAGES = {"contrastive": 0.995}  # stage -> the share of the first losses the last must be under
# Stages whose test step size is capped below ten times their own rate: mCLIP+'s MTE fine-tunes the whole
# encoder's transformer layers, and Adam at 3e-3 on the smoke backbone's encoder fell to 0.58 in four steps
# and then collapsed to chance (ln 8) for good; at 1e-3 it falls steadily to 0.01.
TEST_LR_CAP = {"mte": 1e-3}


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("untrained", "translate_oracle")])
def test_loss_goes_down_on_a_fixed_batch(name, smoke_backbone, small_world):
    method = make(name, smoke_backbone)
    for stage in method.stages:
        task = method.task(stage, small_world)
        batch = task.inputs(task.batch(list(range(8))))  # the frozen features once: a fixed batch
        params = list(method.trainable_parameters(stage).values())
        # Ten times the stage's own learning rate, within [1e-3, 3e-3]: a few dozen steps must show progress.
        lr = min(TEST_LR_CAP.get(stage, 3e-3), max(1e-3, 10 * method.train_config(stage).lr))
        optimizer = torch.optim.Adam(params, lr=lr)
        losses = []
        for module in task.trainable_modules().values():
            module.train()
        for _ in range(30):
            torch.manual_seed(0)  # the same noise, timesteps and dropout every step: a fixed objective
            loss = task.loss(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        # AltCLIP's contrastive stage starts at chance (ln 8 = 2.08 for 8 pairs): the smoke backbone's barely
        # trained image tower gives nearly parallel embeddings, and 30 steps take off about 3% (ratio 0.968
        # on the fixture's backbone; 0.80-0.99 over backbones with other initial weights). Its bar is 0.5%,
        # still far above noise: under the fixed seed a loss that no gradient reaches repeats exactly.
        bar = SLOW_STAGES.get(stage, 0.97)
        assert sum(losses[-3:]) < bar * sum(losses[:3]), f"{name}/{stage}: {losses[:3]} -> {losses[-3:]}"
        method.freeze()


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trips_encode_exactly(name, smoke_backbone, small_world, tmp_path):
    method = make(name, smoke_backbone)
    train_method(method, small_world, tmp_path / "run")
    loaded = load_method(tmp_path / "run" / "method", smoke_backbone)
    assert type(loaded) is type(method) and to_dict(loaded.config) == to_dict(method.config)
    assert loaded.trained_stages == list(method.stages)
    for lang in ("en", "de"):
        a, b = method.encode(PROMPTS, lang), loaded.encode(PROMPTS, lang)
        assert torch.equal(a.token_states, b.token_states)
        with torch.no_grad():  # what the method's own UNet reads (the LLM connector's is wrapped)
            out = method.unet(torch.zeros(3, 3, 32, 32), torch.tensor(10), encoder_hidden_states=a.token_states).sample
        assert out.shape == (3, 3, 32, 32)
        assert (a.pooled is None) == (b.pooled is None)
        if a.pooled is not None:
            assert torch.equal(a.pooled, b.pooled)
        assert torch.equal(method.negative_prompt_embeds(2, lang), loaded.negative_prompt_embeds(2, lang))
    saved = set(__import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(tmp_path / "run" / "method" / "trainable.safetensors")))
    assert saved == set(method.trainable_parameters()), "only the trainable weights are saved"


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("untrained", "translate_oracle")])
def test_an_interrupted_run_resumes_and_matches_an_uninterrupted_one(name, smoke_backbone, small_world, tmp_path):
    configs = {}
    reference = make(name, smoke_backbone)
    for stage in reference.stages:
        configs[stage] = one_step_config(steps=4, checkpoint_every_steps=2, lr=1e-3, weight_decay=0.0)
    train_method(reference, small_world, tmp_path / "reference", train_configs=configs)

    interrupted = make(name, smoke_backbone)
    last = interrupted.stages[-1]
    original_loss, calls = interrupted.loss, {"n": 0}

    def dying_loss(batch, stage):
        if stage == last:
            calls["n"] += 1
            if calls["n"] == 4:  # during step 4 of the last stage, after the checkpoint at step 2
                raise KeyboardInterrupt("simulated kill")
        return original_loss(batch, stage)

    interrupted.loss = dying_loss
    with pytest.raises(KeyboardInterrupt):
        train_method(interrupted, small_world, tmp_path / "run", train_configs=configs)
    state = __import__("json").loads((tmp_path / "run" / last / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2

    resumed = make(name, smoke_backbone)
    train_method(resumed, small_world, tmp_path / "run", train_configs=configs)
    expected = snapshot(reference)
    for param_name, param in resumed.named_parameters():
        assert torch.equal(param, expected[param_name]), f"{name}: {param_name} differs after resume"


def test_altdiffusion_concept_stage_trains_only_cross_attention_keys_and_values(smoke_backbone):
    intended = make("altdiffusion", smoke_backbone).trainable_parameters("concept")
    upstream = make("altdiffusion", smoke_backbone, upstream_all_attn2=True).trainable_parameters("concept")
    assert intended and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in intended)
    n_attn2 = len(cross_attention_modules(smoke_backbone.unet))
    assert len(intended) == 2 * n_attn2  # to_k and to_v are bias-free: one weight each
    assert set(intended) < set(upstream) and all(".attn2." in n for n in upstream)
    assert any(".attn2.to_q." in n for n in upstream) and any(".attn2.to_out." in n for n in upstream)


def test_trikd_stages_and_extension_follow_the_config(smoke_backbone):
    assert make("trikd", smoke_backbone, mte=False).stages == ("trikd",)
    method = make("trikd", smoke_backbone)
    assert method.stages == ("mte", "trikd")
    mte = method.trainable_parameters("mte")
    assert mte and not any("embeddings" in n for n in mte), "MTE keeps the embeddings frozen (upstream)"
    plain = make("trikd", smoke_backbone, token_alignment_weight=0.0)
    assert not any(n.startswith("token_head") for n in plain.trainable_parameters())
    assert any(n.startswith("token_head") for n in method.trainable_parameters())


def test_per_language_methods_need_their_language(smoke_backbone):
    with pytest.raises(ConfigError, match="per target language"):
        build_method("pea", smoke_backbone)
    method = make("pea", smoke_backbone)
    with pytest.raises(UnknownLanguageError):
        method.encode(["Un petit cercle rouge"], "fr")


def test_encode_rejects_bad_input(smoke_backbone):
    method = build_method("untrained", smoke_backbone, languages=("en", "de"))
    with pytest.raises(UnknownLanguageError):
        method.encode(["x"], "xx")
    with pytest.raises(TypeError):
        method.encode("a single string", "en")


def test_loading_a_missing_or_corrupt_method_is_a_clear_error(smoke_backbone, small_world, tmp_path):
    with pytest.raises(MissingWeightsError):
        load_method(tmp_path / "nothing", smoke_backbone)
    method = make("pea", smoke_backbone)
    method.save(tmp_path / "pea")
    (tmp_path / "pea" / "trainable.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataFormatError):
        load_method(tmp_path / "pea", smoke_backbone)


def test_translate_oracle_is_exact_and_passes_culture_words_through(smoke_backbone, small_world):
    oracle = build_method("translate_oracle", smoke_backbone)
    for item in small_world.generation_prompts()[:5]:
        assert oracle.translate([item.captions["de"]], "de") == [item.captions["en"]]
    culture = small_world.culture_prompts("de")[0].captions["de"]
    assert oracle.translate([culture], "de") == [culture]


@pytest.fixture(scope="module")
def sd15_small():
    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs

    return build_sd15_backbone_from_configs(small=True, device="cpu")


@pytest.mark.parametrize("name", [n for n in ALL if n != "translate"])
def test_every_method_runs_on_the_sd15_code_path(name, sd15_small):
    """The same method code on the sd15 architecture (small widths, random weights): VAE latents, the real
    CLIP tokenizer, the byte-level XLM-R stand-in. Losses are finite and gradients reach every stage."""
    from xlcore.config import WorldConfig
    from xlcore.world import World

    world = World(apply_smoke(WorldConfig(image_size=64)))
    fingerprint = sd15_small.fingerprint()
    method = make(name, sd15_small)
    for stage in method.stages:
        task = method.task(stage, world)
        terms = task.loss(task.inputs(task.batch([0, 1])))
        assert torch.isfinite(terms["loss"]), f"{name}/{stage}"
        terms["loss"].backward()
        assert any(p.grad is not None for p in method.trainable_parameters(stage).values()), f"{name}/{stage}"
        method.freeze()
    encoded = method.encode(["A small red circle", ""], "de" if method.per_language else "en")
    assert encoded.token_states.shape[0] == 2
    images = quality.generate(sd15_small, encoded.token_states[:1], [0], 2.0, steps=2, unet=method.unet,
                              negative=method.negative_prompt_embeds(1, "de" if method.per_language else "en"))
    assert images.shape == (1, 3, sd15_small.image_size, sd15_small.image_size)  # the stock SD pipeline
    assert sd15_small.fingerprint() == fingerprint


@pytest.fixture(scope="module")
def sd15_small_bf16():
    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs

    return build_sd15_backbone_from_configs(small=True, device="cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("name", [n for n in ALL if n != "translate"])
def test_every_method_trains_beside_a_bfloat16_backbone(name, sd15_small_bf16, tmp_path):
    """sd15 runs its frozen backbone in bfloat16 on a GPU. Stages configured without mixed precision
    (AltCLIP's contrastive stage, TriKD, IAP) fed float32 activations into bfloat16 layers and failed
    there (seen on an H200); the same mismatch shows on a CPU. Each stage trains a step through the
    Trainer and is timed by the cost measurement, and the backbone is untouched."""
    from xlcore.config import WorldConfig
    from xlcore.evaluate.cost import measure_stage_cost
    from xlcore.world import World

    world = World(apply_smoke(WorldConfig(image_size=64)))
    fingerprint = sd15_small_bf16.fingerprint()
    method = make(name, sd15_small_bf16)
    if not method.stages:
        pytest.skip(f"{name} trains nothing")
    configs = {stage: dataclasses.replace(method.train_config(stage), steps=1, batch_size=2, warmup_steps=0)
               for stage in method.stages}
    costs = train_method(method, world, tmp_path, train_configs=configs)
    assert [cost.steps for cost in costs] == [1] * len(method.stages)
    for stage in method.stages:
        measured = measure_stage_cost(method, stage, world, steps=1, batch_size=2, warmup=1)
        assert measured.seconds_per_step > 0, f"{name}/{stage}"
    assert sd15_small_bf16.fingerprint() == fingerprint


def test_translate_on_sd15_needs_the_nllb_weights(sd15_small):
    with pytest.raises(MissingWeightsError, match="facebook/nllb-200-distilled-600M.*huggingface-cli download"):
        build_method("translate", sd15_small)


def test_iap_step_with_no_english_pivot_in_the_batch_is_a_zero_loss(smoke_backbone, small_world):
    """A batch of culture items only (no English caption) and no dropped caption has nothing to learn
    from: the loss is zero, yet a step still runs (it used to fail on an empty tensor)."""
    method = make("iap", smoke_backbone, caption_dropout=0.0)
    task = method.task("pivot", small_world)
    batch = task.inputs(task.batch(list(range(4))))
    batch["has_english"] = torch.zeros_like(batch["has_english"])
    terms = task.loss(batch)
    assert terms["loss"].item() == 0.0 and terms["items_with_english"].item() == 0.0
    terms["loss"].backward()
    assert all(p.grad is not None and not p.grad.any() for p in method.trainable_parameters("pivot").values())


@pytest.fixture(scope="module")
def sd15_on_meta():
    from xlcore.backbone.sd15 import sd15_architectures

    with torch.device("meta"):
        return sd15_architectures("xlm-roberta-base", device="meta")


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("untrained", "translate_oracle", "mclip_plus")])
def test_counts_at_paper_dimensions_match_the_papers_figures(name, sd15_on_meta):
    """Each method builds its own modules at its paper's dimensions; where the paper gives a figure, the count
    rounds to it (to the figure's precision, 0.05M), and every share is of a system that holds it."""
    with torch.device("meta"):  # the paper-sized modules on the meta device: no memory
        rows = METHODS.get(name).paper_counts(sd15_on_meta)
    assert rows, f"{name} declares no row of the parameter table"
    for row in rows:
        assert 0 <= row.trainable < row.system and row.note
        if row.paper is not None:
            assert abs(row.trainable - row.paper) <= 0.05e6, (row.row, row.trainable, row.paper)
    exact = {"trikd": 14_568_961, "gluegen (translator)": 50_179_776, "altdiffusion/concept": 19_169_280}
    for row in rows:
        if row.row in exact:
            assert row.trainable == exact[row.row]

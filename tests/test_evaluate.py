"""The evaluation layer against hand-computed values, independent computations and its own invariants."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from xlcore.config import GenerationEvalConfig
from xlcore.data import ALL_CAPTIONS, FIRST_CAPTION, RetrievalBenchmark
from xlcore.errors import ConfigError, DataFormatError, MissingWeightsError
from xlcore.evaluate import (EnglishBackbone, RunInfo, benchmark_retrieval_set, evaluate_generation,
                             evaluate_retrieval, world_retrieval_set, write_measurements)
from xlcore.evaluate.clip_score import ClipScorer, OpenClipScorer, ToyClipScorer
from xlcore.evaluate.cost import (PriceTable, extrapolate, measure_stage_cost, published_budgets)
from xlcore.evaluate.fid import REFERENCE_LIST, CleanInception, ScorerFeatures, clean_resize, frechet_distance, reference_rows
from xlcore.evaluate.retrieval import retrieval_scores
from xlcore.methods._base import Conditioning, build_method
from xlcore.registry import METHODS
from xlcore.results import ResultsStore
from xlcore.world import image_to_tensor

# ------------------------------------------------------------------------------------------------
# CLIP score and consistency on a tiny model whose embeddings are known by construction


class TinyScorer(ClipScorer):
    """Image embedding = the image's mean colour; text embedding = a fixed vector per caption."""

    name = "tiny"
    TEXTS = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "yellow": [1.0, 1.0, 0.0], "anti": [-1.0, -1.0, 0.0]}

    def encode_images(self, images):
        return images.float().mean(dim=(2, 3))

    def encode_texts(self, texts):
        return torch.tensor([self.TEXTS[t] for t in texts])


def solid(*rgb, size=4):
    return torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1).expand(3, size, size)


def test_clip_score_conventions_reproduce_hand_computed_values():
    images = torch.stack([solid(1, 0, 0), solid(1, 0, 0), solid(0, 1, 0)])
    texts = ["red", "yellow", "green"]
    # cosines: red.red = 1; red.yellow = 1/sqrt(2); green.green = 1
    expected = (1 + 1 / math.sqrt(2) + 1) / 3
    scores = TinyScorer().scores(images, texts)
    assert scores["raw_cos"] == pytest.approx(expected, abs=1e-6)
    assert scores["heim"] == pytest.approx(100 * expected, abs=1e-4)  # no negative cosine: heim = 100cos
    assert scores["100cos"] == pytest.approx(100 * expected, abs=1e-4)
    assert scores["torchmetrics"] == pytest.approx(100 * expected, abs=1e-4)  # computed by torchmetrics itself


def test_each_convention_floors_where_its_benchmark_does():
    """torchmetrics floors the set's mean; HEIM floors each image (HELM's CLIPScorer scores one image at a
    time through torchmetrics); 100cos and raw_cos do not floor."""
    from xlcore.evaluate.clip_score import torchmetrics_clip_score

    images = torch.stack([solid(1, 1, 0), solid(1, 1, 0)])
    scores = TinyScorer().scores(images, ["anti", "anti"])
    assert scores["raw_cos"] == pytest.approx(-1.0, abs=1e-6)
    assert scores["100cos"] == pytest.approx(-100.0, abs=1e-4)
    assert scores["heim"] == 0.0 and scores["torchmetrics"] == 0.0
    # cosines (1, -1, -1): torchmetrics floors the mean (-33.3 -> 0); HEIM floors each image: (100 + 0 + 0) / 3
    images = torch.stack([solid(1, 1, 0)] * 3)
    texts = ["yellow", "anti", "anti"]
    scores = TinyScorer().scores(images, texts)
    assert scores["torchmetrics"] == 0.0
    assert scores["100cos"] == pytest.approx(-100 / 3, abs=1e-4)
    assert scores["heim"] == pytest.approx(100 / 3, abs=1e-4)
    # an independent HEIM: torchmetrics' CLIPScore called on one image at a time, as HELM does, then the mean
    per_image = [torchmetrics_clip_score(TinyScorer(), images[i:i + 1], texts[i:i + 1]) for i in range(3)]
    assert scores["heim"] == pytest.approx(sum(per_image) / 3, abs=1e-4)


def test_consistency_is_the_cosine_between_paired_image_embeddings():
    a = torch.stack([solid(1, 0, 0), solid(1, 1, 0)])
    b = torch.stack([solid(1, 0, 0), solid(0, 1, 0)])
    assert TinyScorer().image_cosines(a, b).tolist() == pytest.approx([1.0, 1 / math.sqrt(2)], abs=1e-6)


# ------------------------------------------------------------------------------------------------
# Frechet distance


@pytest.fixture(scope="module")
def toy_backbone():
    from xlcore.backbone.toy import load_toy_backbone

    return load_toy_backbone()


def test_fid_of_a_set_with_itself_is_zero_and_grows_monotonically_with_noise(toy_backbone, full_world):
    items = full_world.generation_prompts()[:160]
    real = torch.stack([image_to_tensor(full_world.render(p)) for p in items])
    feature = ScorerFeatures(toy_backbone.scorer)
    assert frechet_distance(feature, real, real) == pytest.approx(0.0, abs=1e-3)
    # 8-bit input means the same images: the same distance as float input (scaled, not just cast)
    as_uint8 = (real * 255).round().to(torch.uint8)
    assert frechet_distance(feature, as_uint8, real) == pytest.approx(0.0, abs=1e-3)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(real.shape, generator=generator)
    distances = [frechet_distance(feature, real, (real + std * noise).clamp(0, 1)) for std in (0.05, 0.1, 0.2, 0.4)]
    assert all(later > earlier for earlier, later in zip(distances, distances[1:])), distances
    assert distances[0] > 0


def test_the_published_fid_reference_list_matches_the_world(full_world):
    with open(REFERENCE_LIST, newline="") as f:
        published = list(csv.DictReader(f))
    assert published == reference_rows(full_world, full_world.generation_prompts())


def test_inception_fid_without_weights_names_the_file_and_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XLCORE_INCEPTION_WEIGHTS", "")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match="weights-inception-2015-12-05-6726825d.pth.*torch-fidelity"):
        CleanInception()


def test_clean_resize_keeps_range_and_flat_images_flat():
    images = torch.stack([solid(0.2, 0.5, 1.0, size=32), torch.rand(3, 32, 32)])
    resized = clean_resize(images)
    assert resized.shape == (2, 3, 299, 299) and resized.min() >= 0 and resized.max() <= 1
    assert torch.allclose(resized[0], solid(0.2, 0.5, 1.0, size=299), atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Retrieval entry point


class ColourSystem:
    """A perfect retrieval system for solid images captioned by colour name."""

    name = "colours"
    COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "rot": (1, 0, 0), "grün": (0, 1, 0), "blau": (0, 0, 1)}

    def check_language(self, lang):
        return lang

    def encode(self, texts, lang):
        return Conditioning(torch.zeros(len(texts), 1, 1), torch.tensor([self.COLOURS[t.split()[-1]] for t in texts]).float())

    def encode_images(self, pixels):
        return pixels.mean(dim=(2, 3))


def write_images(folder, colours):
    folder.mkdir()
    names = []
    for i, rgb in enumerate(colours):
        name = f"{i}.png"
        # non-square, so the centre crop matters; the border is noise that the crop removes
        array = np.zeros((40, 60, 3), dtype=np.uint8)
        array[:, :] = np.array(rgb) * 255
        Image.fromarray(array).save(folder / name)
        names.append(name)
    return names


def test_benchmark_sets_load_images_with_clip_preprocessing_and_score_both_protocols(tmp_path):
    names = write_images(tmp_path / "images", [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    captions = (("a red", "something blue"), ("a green",), ("a blue", "dark red"))
    benchmark = RetrievalBenchmark("toybench/test", "en", tuple(names), captions, tmp_path / "images", ALL_CAPTIONS, "test")
    rset = benchmark_retrieval_set(benchmark, image_size=16)
    assert rset.load_images([0, 2]).shape == (2, 3, 16, 16)
    measured = {m.protocol.split(" ")[0]: m.metrics for m in evaluate_retrieval(ColourSystem(), [rset], progress=False)}
    assert set(measured) == {ALL_CAPTIONS, FIRST_CAPTION}
    # first captions are all right: perfect; all captions: 'something blue' and 'dark red' mislead
    assert measured[FIRST_CAPTION]["t2i_r@1"] == 100.0 and measured[FIRST_CAPTION]["mean_recall"] == 100.0
    # text->image: 3 of 5 queries right at rank 1; the two misleading ones tie with their true image
    # (pessimistic ties rank them behind it)
    assert measured[ALL_CAPTIONS]["t2i_r@1"] == pytest.approx(60.0)
    # image->text, any caption a hit: red's best caption ties with image 2's 'dark red', blue's with image
    # 0's 'something blue' (ties count against the query), green's is alone: 1 of 3 at rank 1
    assert measured[ALL_CAPTIONS]["i2t_r@1"] == pytest.approx(100 / 3) and measured[ALL_CAPTIONS]["i2t_r@5"] == 100.0


def test_a_one_caption_set_keeps_its_own_protocol_name_and_galleries_do_not_collide(tmp_path):
    names = write_images(tmp_path / "images", [(1, 0, 0), (0, 1, 0)])
    first = RetrievalBenchmark("xm3600/test", "en", tuple(names), (("a red",), ("a green",)), tmp_path / "images",
                               FIRST_CAPTION, "t")
    other = RetrievalBenchmark("xm3600/test", "de", tuple(reversed(names)), (("grün",), ("rot",)), tmp_path / "images",
                               ALL_CAPTIONS, "t")
    sets = [benchmark_retrieval_set(first, 8), benchmark_retrieval_set(other, 8)]
    assert sets[0].gallery != sets[1].gallery  # same folder, different image list: separate embeddings
    measured = evaluate_retrieval(ColourSystem(), sets, progress=False)
    assert [m.protocol.split(" ")[0] for m in measured] == [FIRST_CAPTION, ALL_CAPTIONS]
    assert all(m.metrics["mean_recall"] == 100.0 for m in measured)


def test_non_finite_embeddings_are_an_error_not_perfect_recall():
    with pytest.raises(ValueError, match="NaN"):
        retrieval_scores(torch.full((3, 2), float("nan")), torch.eye(3)[:, :2], [0, 1, 2])


def test_a_corrupt_image_file_is_a_clear_error(tmp_path):
    names = write_images(tmp_path / "images", [(1, 0, 0)])
    (tmp_path / "images" / names[0]).write_bytes(b"not a png")
    benchmark = RetrievalBenchmark("toybench/test", "en", tuple(names), (("a red",),), tmp_path / "images", ALL_CAPTIONS, "t")
    with pytest.raises(DataFormatError, match="0.png: not a readable image"):
        evaluate_retrieval(ColourSystem(), [benchmark_retrieval_set(benchmark, 16)], progress=False)


def test_world_sets_share_the_gallery_and_paraphrases_give_the_all_captions_protocol(small_world, toy_backbone):
    sets = [world_retrieval_set(small_world, lang, captions_per_image=3) for lang in ("en", "de")]
    assert sets[0].gallery == sets[1].gallery
    assert all(len(set(group)) == 3 for group in sets[0].captions)  # three distinct paraphrases
    system = EnglishBackbone(toy_backbone)
    measured = evaluate_retrieval(system, sets[:1], progress=False)
    first = next(m for m in measured if m.protocol.startswith(FIRST_CAPTION))
    images = system.encode_images(sets[0].load_images(range(len(sets[0].captions))))
    texts = system.encode([group[0] for group in sets[0].captions], "en").pooled
    direct = retrieval_scores(images, texts, list(range(len(texts)))).as_metrics()
    assert first.metrics == pytest.approx(direct)
    with pytest.raises(ValueError, match="captions_per_image"):
        world_retrieval_set(small_world, "en", captions_per_image=9)


# ------------------------------------------------------------------------------------------------
# Generation entry point


def test_generation_evaluation_is_deterministic_and_measures_every_protocol(smoke_backbone, small_world, tmp_path):
    config = GenerationEvalConfig(n_prompts=3, languages=("en", "de", "xx"), steps=2, batch_size=2, n_culture_prompts=2)
    system = build_method("translate_oracle", smoke_backbone, languages=small_world.languages)
    first = evaluate_generation(system, small_world, config, cache_dir=tmp_path, progress=False)
    second = evaluate_generation(system, small_world, config, cache_dir=tmp_path, progress=False)
    assert [m.metrics for m in first.measurements] == [m.metrics for m in second.measurements]
    assert set(first.images) == {"en", "de"}  # 'xx' is not a language the system reads: skipped
    metrics = {(m.language, k) for m in first.measurements for k in m.metrics}
    for lang in ("en", "de"):
        for name in ("compositional_all", "compositional_shape", "compositional_overall", "compositional_geneval_two_object",
                     "fid_scorer256", "clip_score_raw_cos", "clip_score_torchmetrics", "clip_score_heim",
                     "clip_score_100cos", "consistency_clip_cos", "cococrola_correctness",
                     "cococrola_self_consistency", "cococrola_inverse_specificity"):
            assert (lang, name) in metrics
    assert ("de", "culture_shape") in metrics and ("en", "culture_shape") not in metrics
    concepts = {m.language: m for m in first.measurements if m.benchmark.endswith("/concepts")}
    assert set(concepts) == {"en", "de"} and "CoCo-CroLa" in concepts["de"].protocol
    # English against itself, the self-pairs left out, is its self-consistency (CoCo-CroLa's compare_by_lang)
    assert concepts["en"].metrics["cococrola_correctness"] == pytest.approx(concepts["en"].metrics["cococrola_self_consistency"])
    # the oracle translates exactly, so its English images are the English pipeline's: consistency 1
    en = next(m for m in first.measurements if m.language == "en" and "consistency_clip_cos" in m.metrics)
    assert en.metrics["consistency_clip_cos"] == pytest.approx(1.0, abs=1e-3)
    assert all("seeds 0*100003+prompt index" in m.protocol for m in first.measurements)


def test_measurements_become_tidy_rows(tmp_path, smoke_backbone, small_world):
    config = GenerationEvalConfig(n_prompts=2, languages=("en",), steps=1, batch_size=2, n_culture_prompts=0)
    result = evaluate_generation(EnglishBackbone(smoke_backbone), small_world, config, cache_dir=tmp_path, progress=False)
    store = ResultsStore(tmp_path / "results.csv")
    rows = write_measurements(result.measurements, RunInfo("eval-x", "english-backbone", "pretrained", {"a": 1}), store)
    frame = store.read()
    assert len(frame) == len(rows) > 5
    assert set(frame["method"]) == {"english-backbone"} and set(frame["language"]) == {"en"}
    assert frame["protocol"].str.len().min() > 40


# ------------------------------------------------------------------------------------------------
# Cost


@pytest.mark.parametrize("name", ["pea", "full_finetune"])
def test_cost_measurement_counts_flops_and_leaves_the_method_and_backbone_untouched(name, smoke_backbone, small_world):
    language = "de" if METHODS.get(name).per_language else None
    method = build_method(name, smoke_backbone, {"train": {"batch_size": 4}} if name == "pea" else None, language=language,
                          languages=small_world.languages)
    before = {k: p.detach().clone() for k, p in method.trainable_parameters().items()}
    fingerprint = smoke_backbone.fingerprint()
    stage = method.stages[-1]
    measured = measure_stage_cost(method, stage, small_world, steps=1, batch_size=2)
    assert measured.train_flops_per_step > 0 and measured.seconds_per_step > 0
    assert measured.trainable_share == pytest.approx(100 * measured.trainable_parameters / measured.system_parameters)
    assert all(torch.equal(before[k], p) for k, p in method.trainable_parameters().items())
    assert smoke_backbone.fingerprint() == fingerprint
    # FLOPs only: no optimizer, no timing
    flops_only = measure_stage_cost(method, stage, small_world, steps=0, batch_size=2)
    assert math.isnan(flops_only.seconds_per_step) and "seconds_per_step" not in flops_only.as_metrics()
    assert flops_only.train_flops_per_step == measured.train_flops_per_step


def test_the_cost_measurement_times_the_trainers_own_step(smoke_backbone, small_world, monkeypatch):
    """What is timed is `Trainer.train_step`, the call training makes (clipping, precision, accumulation
    and the all-reduce included): a warm-up, a FLOP-counted step, then the timed ones, all through it."""
    from xlcore.train import Trainer

    calls = []
    original = Trainer.train_step

    def counting(self, step=None, **kwargs):
        calls.append((step, kwargs.get("update", True), self.config.mixed_precision))
        return original(self, step, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", counting)
    method = build_method("pea", smoke_backbone, language="de", languages=small_world.languages)
    measure_stage_cost(method, "adapter", small_world, steps=2, batch_size=2)
    assert [step for step, _, _ in calls] == [0, 1, 2, 3]
    assert all(update for _, update, _ in calls)
    assert {precision for *_, precision in calls} == {method.train_config("adapter").mixed_precision}  # as trained


def test_a_trained_copy_replaces_the_original_in_the_system_count(smoke_backbone, small_world):
    counts = smoke_backbone.parameter_counts()
    backbone_total = sum(v for k, v in counts.items() if k not in ("scorer", "clip.text", "clip.vision"))
    untrained = build_method("untrained", smoke_backbone, languages=small_world.languages)
    assert untrained.system_parameter_count() == backbone_total + sum(p.numel() for _, p in untrained.named_parameters())
    full = build_method("full_finetune", smoke_backbone, languages=small_world.languages)
    own = sum(p.numel() for _, p in full.named_parameters())
    # the UNet and the multilingual encoder run as trained copies: counted once, as the copies
    assert full.system_parameter_count() == backbone_total - counts["unet"] - counts["multilingual"] + own


def test_extrapolation_arithmetic_and_its_protocol_text():
    prices = PriceTable.load()
    budget = {"samples": 1_000_000, "reported_gpu_hours": 10, "source": "paper, table 9"}
    metrics, how = extrapolate(budget, flops_per_sample=2e12, prices=prices, gpu="A100-40GB")
    gpu = prices.gpus["A100-40GB"]
    hours = 1_000_000 * 2e12 / (gpu["peak_tflops"] * 1e12 * prices.mfu) / 3600
    assert metrics["extrapolated_gpu_hours"] == pytest.approx(hours)
    assert metrics["extrapolated_dollars"] == pytest.approx(hours * gpu["dollars_per_hour"])
    assert metrics["published_gpu_hours_dollars"] == pytest.approx(10 * gpu["dollars_per_hour"])
    assert "paper, table 9" in how and "MFU" in how
    assert extrapolate(None, flops_per_sample=1.0, prices=prices) == ({}, "no published budget on record")
    # the toy scale passes no FLOPs: only the published GPU-hours are priced
    assert "extrapolated_gpu_hours" not in extrapolate(budget, flops_per_sample=None, prices=prices)[0]


def test_price_table_is_editable_and_checked(tmp_path, monkeypatch):
    table = json.loads(PriceTable.load().source and open(PriceTable.load().source).read())
    table["gpus"]["MyCard"] = {"dollars_per_hour": 1.0, "peak_tflops": 100}
    table["default_gpu"] = "MyCard"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    monkeypatch.setenv("XLCORE_PRICE_TABLE", str(path))
    assert PriceTable.load().gpu() == ("MyCard", {"dollars_per_hour": 1.0, "peak_tflops": 100})
    with pytest.raises(ConfigError, match="not in the price table"):
        PriceTable.load().gpu("TPU")
    path.write_text("{broken")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        PriceTable.load()
    path.write_text(json.dumps({"gpus": {}, "default_gpu": "x", "mfu": 0.3}))
    with pytest.raises(DataFormatError, match="default_gpu"):
        PriceTable.load()


def test_every_published_budget_names_a_registered_method_stage_and_a_source(smoke_backbone):
    budgets = published_budgets()
    for key, budget in budgets.items():
        name, stage = key.split("/")
        cls = METHODS.get(name)
        config = cls.config_class(mte=True) if name == "trikd" else None
        assert stage in build_method(name, smoke_backbone, config, language="de" if cls.per_language else None).stages
        assert budget["source"]
    assert budgets["altdiffusion/teacher"] is budgets["altclip/teacher"]


# ------------------------------------------------------------------------------------------------
# Local CLIP models


def test_open_clip_scorer_loads_a_local_checkpoint_and_names_missing_ones(tmp_path):
    import open_clip

    config = {"embed_dim": 32, "quick_gelu": True,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "TinyTest-quickgelu.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "configs")
    model = open_clip.create_model("TinyTest-quickgelu")
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    scorer = OpenClipScorer("TinyTest-quickgelu", str(tmp_path / "tiny.pt"))
    images = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        expected = model.encode_image(scorer_input(images))
    assert torch.allclose(scorer.encode_images(images), expected, atol=1e-5)
    assert set(scorer.scores(images, ["a red circle", "a blue star"])) == {"raw_cos", "heim", "100cos", "torchmetrics"}
    with pytest.raises(MissingWeightsError, match="laion400m_e32"):
        OpenClipScorer("ViT-B-32-quickgelu", "laion400m_e32")


def scorer_input(images):
    from xlcore.backbone.base import clip_normalise

    resized = torch.nn.functional.interpolate(images, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    return clip_normalise(resized)


def test_toy_clip_scorer_prefers_the_right_caption(toy_backbone, full_world):
    items = full_world.generation_prompts()[:16]
    images = torch.stack([image_to_tensor(full_world.render(p)) for p in items])
    scorer = ToyClipScorer(toy_backbone)
    right = scorer.scores(images, [p.captions["en"] for p in items])["raw_cos"]
    wrong = scorer.scores(images, [p.captions["en"] for p in items[::-1]])["raw_cos"]
    assert right > wrong + 0.3


REAL = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.mark.skipif(not (REAL / "multi30k").is_dir(), reason=f"Multi30K caption files not present at {REAL}")
def test_retrieval_on_the_published_multi30k_files_end_to_end(tmp_path):
    """The published German captions with stand-in image files: image i is painted with a colour that
    encodes i, and a system that knows the pairing embeds both as one-hot vectors. Every step between the
    files and the recall (reading, ordering, preprocessing, chunking) must keep the pairing intact."""
    from xlcore.data import load_multi30k_task1

    names = load_multi30k_task1(REAL / "multi30k", "de").image_ids
    (tmp_path / "images").mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (12, 8), (i % 256, i // 256, 0)).save(tmp_path / "images" / name, format="PNG")
    benchmark = load_multi30k_task1(REAL / "multi30k", "de", image_dir=tmp_path / "images")
    first_owner = {}
    for i, (caption,) in enumerate(benchmark.captions):
        first_owner.setdefault(caption, i)

    class KnowsThePairing:
        def encode(self, texts, lang):
            return Conditioning(None, torch.nn.functional.one_hot(torch.tensor([first_owner[t] for t in texts]), len(names)).float())

        def encode_images(self, pixels):
            codes = (pixels[:, 0, 0, 0] * 255).round().long() + 256 * (pixels[:, 1, 0, 0] * 255).round().long()
            return torch.nn.functional.one_hot(codes, len(names)).float()

    (measured,) = evaluate_retrieval(KnowsThePairing(), [benchmark_retrieval_set(benchmark, 16)], batch_size=96,
                                     chunk_size=100, progress=False)
    assert measured.protocol.startswith(ALL_CAPTIONS) and "1000 images" in measured.protocol
    # (were a caption repeated across images, its queries would point at the first of them)
    expected = 100.0 * sum(first_owner[c] == i for i, (c,) in enumerate(benchmark.captions)) / len(names)
    assert measured.metrics["t2i_r@1"] == pytest.approx(expected) == 100.0
    assert measured.metrics["mean_recall"] == 100.0


def test_the_multistep_sampler_keeps_the_schedule_and_is_named_in_every_protocol(smoke_backbone, small_world, tmp_path):
    """DPM-Solver++ 2M (issue 21's faster sampler): built from the backbone's DDIM config (same spacing and
    prediction type), the backbone itself untouched; the rows say which sampler drew; an unknown one is refused."""
    from diffusers import DPMSolverMultistepScheduler

    from xlcore.backbone.pipeline import with_sampler

    fast = with_sampler(smoke_backbone, "dpm++")
    assert isinstance(fast.sample_scheduler, DPMSolverMultistepScheduler) and fast.unet is smoke_backbone.unet
    for key in ("timestep_spacing", "prediction_type", "num_train_timesteps"):
        assert fast.sample_scheduler.config[key] == smoke_backbone.sample_scheduler.config[key]
    assert with_sampler(smoke_backbone, "ddim") is smoke_backbone
    with pytest.raises(ConfigError, match="unknown sampler 'euler'"):
        with_sampler(smoke_backbone, "euler")
    config = GenerationEvalConfig(n_prompts=2, languages=("en",), steps=3, batch_size=2, n_culture_prompts=0,
                                  concept_samples=0, sampler="dpm++")
    system = build_method("translate_oracle", smoke_backbone, languages=small_world.languages)
    result = evaluate_generation(system, small_world, config, cache_dir=tmp_path, progress=False)
    assert all("DPM-Solver++ 2M 3 steps" in m.protocol for m in result.measurements)
    ddim = evaluate_generation(system, small_world, dataclasses.replace(config, sampler="ddim"), cache_dir=tmp_path,
                               progress=False)
    assert not torch.equal(result.images["en"], ddim.images["en"])  # another sampler, other images

"""The benchmark conventions (issue: evaluation protocols as the benchmarks define them): GenEval's task
groups and overall score, order-free two-object judgement, m-GenEval's cross-lingual reading, CoCo-CroLa's
three scores and exact averages; each against a hand-worked case and an independent implementation."""

import random

import pytest
import torch

from xlcore.errors import MissingWeightsError
from xlcore.evaluate.compositional import (COLUMNS, GENEVAL_TASKS, all_languages_correct, geneval_overall, judge,
                                           summarise)
from xlcore.evaluate.concepts import (CocoCrolaFeatures, concept_scores, mean_pairwise_cosine, measure_concepts,
                                      world_concept_prompts)
from xlcore.evaluate.retrieval import retrieval_scores
from xlcore.world.scene import ALL_SHAPES, AXES, COLOURS, LAYOUTS, POSITIONS, SHAPE_CULTURE, SIZES, Scene, Thing


def predictions_for(*labels: dict[str, int]) -> torch.Tensor:
    """The scorer's output for images whose predicted labels are given (unlisted classes: 0)."""
    out = torch.zeros(len(labels), len(COLUMNS), dtype=torch.long)
    for i, predicted in enumerate(labels):
        for name, value in predicted.items():
            out[i, COLUMNS[name]] = value
    return out


RED_CIRCLE_LEFT_OF_BLUE_STAR = Scene((Thing("circle", "red"), Thing("star", "blue")), "horizontal")


def test_a_pair_drawn_in_swapped_order_has_both_objects_but_not_the_relation():
    want = RED_CIRCLE_LEFT_OF_BLUE_STAR.labels()
    swapped = {**want, "shape0": want["shape1"], "colour0": want["colour1"], "shape1": want["shape0"],
               "colour1": want["colour0"]}
    judged = judge(predictions_for(want, swapped), [RED_CIRCLE_LEFT_OF_BLUE_STAR] * 2)
    right, wrong_order = ({k: float(v[i]) for k, v in judged.items()} for i in (0, 1))
    assert right["all"] == right["geneval_two_object"] == right["geneval_color_attr"] == right["geneval_position"] == 1
    # slot-based: both objects in the wrong slots fail shape, colour and relation; GenEval's object tasks pass
    assert wrong_order["shape"] == wrong_order["colour"] == wrong_order["relation"] == wrong_order["all"] == 0
    assert wrong_order["geneval_two_object"] == wrong_order["geneval_color_attr"] == 1
    assert wrong_order["geneval_position"] == 0  # the matched pair stands in the reverse relation
    # colours swapped between the objects: both shapes there (two_object), not each in its colour
    recoloured = {**want, "colour0": want["colour1"], "colour1": want["colour0"]}
    judged = judge(predictions_for(recoloured), [RED_CIRCLE_LEFT_OF_BLUE_STAR])
    assert float(judged["geneval_two_object"][0]) == 1 and float(judged["geneval_color_attr"][0]) == 0
    assert float(judged["geneval_position"][0]) == 1  # GenEval's position asks for the objects, not their colours


def test_overall_is_the_mean_over_task_groups_not_over_images():
    single = Scene((Thing("square", "green", "big"),), "centre")
    scenes = [single] * 3 + [RED_CIRCLE_LEFT_OF_BLUE_STAR]
    wrong_shape = {**single.labels(), "shape0": ALL_SHAPES.index("heart")}
    predictions = predictions_for(single.labels(), single.labels(), wrong_shape, RED_CIRCLE_LEFT_OF_BLUE_STAR.labels())
    summary = summarise(judge(predictions, scenes))
    assert summary["geneval_single_object"] == summary["geneval_colors"] == 200 / 3
    assert summary["geneval_two_object"] == summary["geneval_color_attr"] == summary["geneval_position"] == 100.0
    assert summary["all"] == 75.0  # pooled over the four images (GenEval's "% correct images")
    assert geneval_overall(summary) == pytest.approx((2 * 200 / 3 + 3 * 100) / 5, abs=1e-12)
    assert geneval_overall({"all": 10.0}) is None


def _independent_geneval(got: dict[str, int], want: dict[str, int], pair: bool) -> dict[str, bool]:
    """GenEval's task rules written again from labels: objects as multisets, the relation by slot."""
    if not pair:
        return {"geneval_single_object": got["shape0"] == want["shape0"],
                "geneval_colors": (got["shape0"], got["colour0"]) == (want["shape0"], want["colour0"])}
    objects = lambda d, keys: sorted(tuple(d[f"{k}{s}"] for k in keys) for s in (0, 1))  # noqa: E731
    in_order = all(got[f"shape{s}"] == want[f"shape{s}"] for s in (0, 1))
    if want["shape0"] == want["shape1"]:
        in_order = in_order and all(got[f"colour{s}"] == want[f"colour{s}"] for s in (0, 1))
    return {"geneval_two_object": objects(got, ["shape"]) == objects(want, ["shape"]),
            "geneval_color_attr": objects(got, ["shape", "colour"]) == objects(want, ["shape", "colour"]),
            "geneval_position": got["layout"] == want["layout"] and in_order}


def test_geneval_groups_match_an_independent_judge_on_random_predictions():
    rng = random.Random(0)
    scenes = []
    for _ in range(300):
        if rng.random() < 0.5:
            scenes.append(Scene((Thing(rng.choice(ALL_SHAPES[:3]), rng.choice(COLOURS[:2]), rng.choice(SIZES)),),
                                rng.choice(POSITIONS)))
        else:
            a, b = (Thing(rng.choice(ALL_SHAPES[:2]), rng.choice(COLOURS[:2])) for _ in range(2))
            if a != b:
                scenes.append(Scene((a, b), rng.choice(AXES)))
    # predictions drawn from a few classes, so matches, swaps and near-misses are all frequent
    guesses = [{"layout": rng.randrange(len(LAYOUTS)), "shape0": rng.randrange(2), "shape1": rng.randrange(2),
                "colour0": rng.randrange(2), "colour1": rng.randrange(2), "size0": rng.randrange(2)} for _ in scenes]
    for scene, guess in zip(scenes, guesses):  # make the pair's axis right half the time
        if scene.is_pair and rng.random() < 0.5:
            guess["layout"] = scene.labels()["layout"]
    judged = judge(predictions_for(*guesses), scenes)
    for i, (scene, guess) in enumerate(zip(scenes, guesses)):
        for task, expected in _independent_geneval(guess, scene.labels(), scene.is_pair).items():
            assert float(judged[task][i]) == float(expected), (scene, guess, task)
        for task in GENEVAL_TASKS:
            if task not in _independent_geneval(guess, scene.labels(), scene.is_pair):
                assert torch.isnan(judged[task][i])


def test_averages_are_exact_hit_counts():
    hits = torch.tensor([1.0] * 47 + [0.0] * 53)
    assert summarise({"all": hits})["all"] == 47.0
    assert summarise({"all": torch.tensor([1.0, 0.0, 0.0, float("nan")])})["all"] == 100 / 3
    # recall: 47 of 100 queries at rank 0 gives exactly 47.0 (float32 averaging gave 46.99999988)
    n = 100
    images = torch.eye(n)
    texts = images.clone()
    texts[47:] = torch.roll(images[47:], 1, dims=0)  # queries 47.. point at another image
    scores = retrieval_scores(images, texts, list(range(n)), ks=(1,))
    assert scores.text_to_image[1] == 47.0


def test_all_languages_correct_and_agreement_with_english():
    judged = {"en": torch.tensor([1.0, 1.0, 0.0, 1.0]), "de": torch.tensor([1.0, 0.0, 0.0, 1.0]),
              "zh": torch.tensor([1.0, 1.0, 1.0, float("nan")])}
    out = all_languages_correct(judged)
    assert out["all_languages"] == 100 / 3  # prompts 0-2 apply everywhere; only prompt 0 succeeds in all
    assert out["agrees_with_en/de"] == 200 / 3 and out["agrees_with_en/zh"] == 200 / 3


# ------------------------------------------------------------------------------------------------
# CoCo-CroLa


def _upstream_avg_cos_sim(list_1: torch.Tensor, list_2: torch.Tensor, is_self_sim: bool = False) -> float:
    """CoCo-CroLa's avg_cos_sim as its evaluate_model.py computes it: a loop over list_2's rows, one being
    subtracted per row for the self-pairs."""
    total = 0.0
    count = list_1.shape[0] * list_2.shape[0] - is_self_sim * list_1.shape[0]
    for i in range(list_2.shape[0]):
        total += float(torch.nn.functional.cosine_similarity(list_1.double(), list_2[i].unsqueeze(0).double()).sum()
                       - 1 * is_self_sim)
    return total / count


def test_the_three_scores_on_a_hand_worked_case():
    e1, e2, e3 = torch.eye(3).double()
    # English draws concept a as e1 twice; German draws it once as e1 and once as e2; concept b is e3 everywhere
    features = {"en": {"a": torch.stack([e1, e1]), "b": torch.stack([e3, e3])},
                "de": {"a": torch.stack([e1, e2]), "b": torch.stack([e3, e3])}}
    scores = concept_scores(features)
    # correctness: a: pairs (e1,e1),(e1,e2) twice -> 1/2; b: 1 -> mean 0.75
    assert scores["de"]["correctness"] == pytest.approx(0.75)
    # self-consistency: a: cos(e1, e2) = 0; b: 1 -> 0.5
    assert scores["de"]["self_consistency"] == pytest.approx(0.5)
    # inverse specificity against the fingerprint (e1 for a, e3 for b): a: (1 + 0 + 0 + 0) / 4; b: (0 + 1) * 2 / 4
    assert scores["de"]["inverse_specificity"] == pytest.approx((0.25 + 0.5) / 2)
    assert scores["en"]["correctness"] == pytest.approx(1.0)  # against itself, the self-pairs left out


def test_pairwise_means_match_coco_crolas_loop_on_random_features():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=generator), torch.randn(7, 8, generator=generator)
    assert mean_pairwise_cosine(a, b) == pytest.approx(_upstream_avg_cos_sim(a, b), abs=1e-12)
    assert mean_pairwise_cosine(a, a, same_set=True) == pytest.approx(_upstream_avg_cos_sim(a, a, True), abs=1e-9)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_cosine(a[:1], a[:1], same_set=True)


def test_world_concepts_are_every_shape_with_culture_concepts_in_their_language_only(small_world):
    prompts = world_concept_prompts(small_world, samples=3)
    concepts = {p.concept for p in prompts}
    assert concepts == {s for s in ALL_SHAPES if SHAPE_CULTURE.get(s, "en") in small_world.languages or s not in SHAPE_CULTURE}
    for prompt in prompts:
        owner = SHAPE_CULTURE.get(prompt.concept)
        assert set(prompt.captions) == ({owner} if owner else set(small_world.languages))
    indices = [p.index for p in prompts]
    assert len(set(indices)) == len(indices)  # every sample its own noise
    # the samples of a concept differ in colour, size and place, and are the same scene in every language
    circle = [p for p in prompts if p.concept == "circle"]
    assert len({p.captions["en"] for p in circle}) == 3


def test_measure_concepts_scores_the_languages_asked_with_english_as_source(small_world):
    prompts = world_concept_prompts(small_world, samples=2)
    drawn = []

    def draw_images(texts, lang, indices):
        drawn.append(lang)
        generator = torch.Generator().manual_seed(len(texts))
        return torch.rand(len(texts), 3, 8, 8, generator=generator)

    scores = measure_concepts(draw_images, prompts, ["de"], lambda images: images.flatten(1), source="en")
    assert drawn == ["de", "en"] and set(scores) == {"de"}
    assert set(scores["de"]) == {"correctness", "self_consistency", "inverse_specificity"}
    no_source = measure_concepts(draw_images, prompts, ["de"], lambda images: images.flatten(1), source=None)
    assert "correctness" not in no_source["de"]


def test_coco_crolas_extractor_loads_from_disk_and_is_refused_clearly_when_missing(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    model = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=32, patch_size=8)).eval()
    model.save_pretrained(tmp_path / "tiny")
    features = CocoCrolaFeatures(str(tmp_path / "tiny"))
    images = torch.rand(2, 3, 32, 32)
    from xlcore.backbone.base import clip_normalise

    with torch.no_grad():
        expected = model(pixel_values=clip_normalise(images)).pooler_output
    assert torch.allclose(features(images), expected, atol=1e-6)
    with pytest.raises(MissingWeightsError, match="openai/clip-vit-base-patch32.*huggingface-cli download"):
        CocoCrolaFeatures()


def test_concept_lists_get_the_three_scores_and_other_prompt_sets_do_not(tmp_path):
    from xlcore.evaluate.prompt_sets import concepts

    path = tmp_path / "concepts.csv"
    path.write_text("en,de\ndog,Hund\ncat,Katze\n")
    listed = concepts(path, {"en": "a photograph of {}", "de": "ein Foto von {}"})
    prompts = listed.concept_prompts(3)
    assert len(prompts) == 6 and {p.concept for p in prompts} == {"a photograph of dog", "a photograph of cat"}
    assert len({p.index for p in prompts}) == 6  # one prompt, several seeds (CoCo-CroLa's num_samples)
    assert all(p.captions["de"] in ("ein Foto von Hund", "ein Foto von Katze") for p in prompts)
    assert [p.sample for p in prompts] == [0, 1, 2, 0, 1, 2]


def test_a_system_that_reads_no_english_is_compared_with_the_english_pipeline(small_world):
    prompts = world_concept_prompts(small_world, samples=2)
    drawn = []

    def system(texts, lang, indices):
        drawn.append(("system", lang))
        return torch.rand(len(texts), 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def pipeline(texts, lang, indices):
        drawn.append(("pipeline", lang))
        return torch.rand(len(texts), 3, 8, 8, generator=torch.Generator().manual_seed(2))

    scores = measure_concepts(system, prompts, ["de"], lambda images: images.flatten(1), "en", draw_source=pipeline)
    assert drawn == [("system", "de"), ("pipeline", "en")] and "correctness" in scores["de"]

"""Real corpora: every reader on files written here in the published formats, the export round trip, bad
samples counted and skipped, clear errors, two-process sharding, resume inside a shard, and every method
training on the sd15 code path from each format."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xlcore.config import WorldConfig, apply_smoke
from xlcore.data import sources
from xlcore.data.datafile import load_data_file
from xlcore.data.export import export_world
from xlcore.errors import ConfigError, DataFormatError, MissingDataError
from xlcore.world import World

from sharding_job import PixelMeanTask  # tests/: a task over a real source, shared with the two-process job

REPO = Path(__file__).resolve().parent.parent
LIMIT = 24  # samples per regime in the exported files


def png(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((tensor * 255).round().byte().permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world() -> World:
    return World(apply_smoke(WorldConfig()))


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory) -> Path:
    return export_world(world, tmp_path_factory.mktemp("exported"), limit=LIMIT, shard_size=10)


def same_samples(real, expected, keys=("pixel_values", "caption", "caption_en", "has_english", "en", "target", "text")):
    assert len(real) == len(expected)
    for i in range(len(expected)):
        a, b = real[i], expected[i]
        for key in keys:
            if key in b:
                assert torch.equal(a[key], b[key]) if torch.is_tensor(b[key]) else a[key] == b[key], (i, key)


# ------------------------------------------------------------------------------------------------------
# Readers against the world


def test_exported_shards_and_text_give_the_worlds_samples(world, exported, tmp_path):
    from xlcore.data.corpus import Corpus

    corpus = load_data_file(exported, image_size=32, index_dir=tmp_path / "index")
    assert isinstance(world, Corpus) and isinstance(corpus, Corpus)  # one contract, two implementations
    assert corpus.languages == world.languages
    same_samples(corpus.english_image_text(), world.english_image_text(LIMIT))
    for lang in ("de", "zh"):
        same_samples(corpus.language_image_text(lang), world.language_image_text(lang, LIMIT))
        same_samples(corpus.pivot_image_text(lang), world.pivot_image_text(lang, LIMIT))
        same_samples(corpus.parallel_text(lang), world.parallel_text(lang, LIMIT))
    same_samples(corpus.monolingual_text("ja"), world.monolingual_text("ja", LIMIT))
    same_samples(corpus.english_image_text(7), world.english_image_text(7))  # the first n, as the world's
    assert corpus.english_image_text(7).descriptor()["size"] == 7
    assert list((tmp_path / "index").glob("webdataset-*.json"))  # indexed once, reused by the next run


def pivot_rows(world, lang, n=12):
    data = world.pivot_image_text(lang, n)
    return [{"image": png(data[i]["pixel_values"]), "caption": data[i]["caption"], "language": lang,
             "caption_en": data[i]["caption_en"]} for i in range(n)], data


def test_parquet_files_and_a_datasets_folder_read_like_the_world(world, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, expected = pivot_rows(world, "zh")
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.slice(0, 5), tmp_path / "part-0.parquet", row_group_size=2)
    pq.write_table(table.slice(5), tmp_path / "part-1.parquet", row_group_size=3)
    reader = sources.ParquetImageText(str(tmp_path / "part-*.parquet"), "zh", image_size=32, language_column="language",
                                      english_column="caption_en")
    same_samples(reader, expected)
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  "language": datasets.Value("string"), "caption_en": datasets.Value("string")})
    folder = tmp_path / "hf"
    datasets.Dataset.from_list([{**r, "image": {"bytes": r["image"], "path": None}} for r in rows],
                               features=features).save_to_disk(str(folder))
    same_samples(sources.ParquetImageText(str(folder), "zh", image_size=32, english_column="caption_en"), expected)


def test_a_csv_and_a_tsv_of_image_paths_read_like_the_world(world, tmp_path):
    rows, expected = pivot_rows(world, "de")
    (tmp_path / "images").mkdir()
    for sep, name in ((",", "list.csv"), ("\t", "list.tsv")):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=sep)
            writer.writerow(["path", "text", "lang", "english"])
            for i, row in enumerate(rows):
                (tmp_path / "images" / f"{i}.png").write_bytes(row["image"])
                writer.writerow([f"images/{i}.png", row["caption"], "de", row["caption_en"]])
        reader = sources.TableImageText(str(tmp_path / name), "de", image_size=32, image_column="path",
                                        caption_column="text", language_column="lang", english_column="english")
        same_samples(reader, expected)


def test_parallel_text_as_moses_files_or_one_tsv(world, tmp_path):
    expected = world.parallel_text("cs", 20)
    pairs = [expected[i] for i in range(20)]
    (tmp_path / "c.en").write_text("".join(p["en"] + "\n" for p in pairs))
    (tmp_path / "c.cs").write_text("".join(p["target"] + "\r\n" for p in pairs))  # CRLF is fine
    same_samples(sources.LineParallelText("cs", english=str(tmp_path / "c.en"), target=str(tmp_path / "c.cs")), expected)
    (tmp_path / "c.tsv").write_text("".join(f"{p['target']}\t{p['en']}\n" for p in pairs))
    same_samples(sources.LineParallelText("cs", tsv=str(tmp_path / "c.tsv"), columns=["target", "en"]), expected)
    (tmp_path / "short.cs").write_text("".join(p["target"] + "\n" for p in pairs[:-1]))
    with pytest.raises(DataFormatError, match="different lengths"):
        sources.LineParallelText("cs", english=str(tmp_path / "c.en"), target=str(tmp_path / "short.cs"))


def test_images_are_resized_on_the_shorter_side_and_centre_cropped():
    stripes = np.zeros((40, 80, 3), dtype=np.uint8)
    stripes[:, 20:60] = 255  # a white middle half: what the centre crop keeps
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    image = sources.load_image(buffer.getvalue(), 20, "test")
    assert image.shape == (3, 20, 20) and image[:, :, 1:-1].min() > 0.99  # the black sides are cut off
    assert sources.load_image(buffer.getvalue(), None, "test").shape == (3, 40, 80)


# ------------------------------------------------------------------------------------------------------
# Bad samples and clear errors


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample.pop("__key__")
            for ext, data in sample.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_bad_samples_are_skipped_counted_and_listed_never_fatal(world, tmp_path):
    good = world.language_image_text("zh", 3)
    image = png(good[0]["pixel_values"])
    samples = [{"__key__": f"good{i}", "png": png(good[i]["pixel_values"]), "txt": good[i]["caption"].encode()}
               for i in range(3)]
    samples += [
        {"__key__": "broken", "jpg": b"\xff\xd8 not a jpeg", "txt": good[0]["caption"].encode()},
        {"__key__": "empty", "png": image, "txt": b"   "},
        {"__key__": "german", "png": image, "txt": "Ein roter Kreis".encode()},
        {"__key__": "declared", "png": image, "txt": good[1]["caption"].encode(),
         "json": json.dumps({"LANGUAGE": "ja"}).encode()},
        {"__key__": "noimage", "txt": good[2]["caption"].encode()},
    ]
    write_tar(tmp_path / "shard.tar", samples)
    reader = sources.WebDatasetImageText(str(tmp_path / "shard.tar"), "zh", image_size=32, index_dir=tmp_path / "index")
    assert len(reader) == 3 and [reader[i]["caption"] for i in range(3)] == [good[i]["caption"] for i in range(3)]
    assert reader.bad.total == 5
    metrics = reader.bad.as_metrics()
    assert metrics["bad_samples"] == 5 and metrics["bad_samples/empty_caption"] == 1
    assert metrics["bad_samples/no_han_characters_in_a_chinese_caption"] == 1
    assert metrics["bad_samples/language_field_says_ja_the_source_is_zh"] == 1
    listed = [json.loads(line) for line in (tmp_path / "index" / "bad_samples.jsonl").read_text().splitlines()]
    assert {row["key"] for row in listed} == {"broken", "empty", "german", "declared", "noimage"}
    assert all(row["file"].endswith("shard.tar") for row in listed)


def test_missing_and_malformed_files_are_errors_that_name_them(tmp_path):
    with pytest.raises(MissingDataError, match=r"2 of 2 files not found: .*00001\.tar, .*00002\.tar"):
        sources.WebDatasetImageText(str(tmp_path / "{00001..00002}.tar"), "de")
    with pytest.raises(MissingDataError, match="matches no file"):
        sources.WebDatasetImageText(str(tmp_path / "*.tar"), "de")
    (tmp_path / "bad.tar").write_bytes(b"this is no tar file at all" * 40)
    with pytest.raises(DataFormatError, match="bad.tar.*not a readable tar shard"):
        sources.WebDatasetImageText(str(tmp_path / "bad.tar"), "de")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(DataFormatError, match="bad.parquet.*not a readable Parquet file"):
        sources.ParquetImageText(str(tmp_path / "bad.parquet"), "de")
    (tmp_path / "list.csv").write_text("file,caption\nx.png,hi\n")
    with pytest.raises(DataFormatError, match=r"list.csv.*no column\(s\) \['image'\]"):
        sources.TableImageText(str(tmp_path / "list.csv"), "de")
    data = tmp_path / "data.yaml"
    cases = [("english_image_text: {format: zip, shards: x}\n", "unknown format 'zip'", "english_image_text"),
             ("english_image_text: {format: webdataset, shard: x}\n", r"unknown field\(s\) \['shard'\]", "english_image_text"),
             ("parallel_text: {de: {format: moses, english: a.en}}\n", "give `english` and `target`", "parallel_text"),
             ("langauges: [en]\n", "unknown top-level field", None),
             ("english_image_text: [unclosed\n", "not valid YAML", None)]
    for text, message, regime in cases:
        data.write_text(text)
        with pytest.raises((DataFormatError, ConfigError, MissingDataError), match=message):
            corpus = load_data_file(data, image_size=32, index_dir=tmp_path / "i")
            corpus.regime(regime, "en" if regime == "english_image_text" else "de")
    data.write_text("english_image_text: {format: webdataset, shards: x.tar}\n")
    with pytest.raises(MissingDataError, match="gives no pivot_image_text for 'de'"):
        load_data_file(data, image_size=32, index_dir=tmp_path / "i").regime("pivot_image_text", "de")


# ------------------------------------------------------------------------------------------------------
# Training from files


def train_losses(method_name, backbone, corpus, tmp_path, language=None, steps=3):
    from xlcore.config import apply_smoke as smoke
    from xlcore.experiment import train_method
    from xlcore.methods._base import build_method, default_config
    from xlcore.train import read_log

    config = smoke(default_config(method_name, backbone.preset))
    # At most LIMIT samples of each regime, what the files hold (the world would serve any number)
    config = dataclasses.replace(config, **{f.name: min(getattr(config, f.name), LIMIT) for f in dataclasses.fields(config)
                                            if "items" in f.name and isinstance(getattr(config, f.name), int)})
    method = build_method(method_name, backbone, config, language=language, languages=corpus.languages, seed=0)
    configs = {s: dataclasses.replace(method.train_config(s), steps=steps, batch_size=4, log_every=1)
               for s in method.stages}
    train_method(method, corpus, tmp_path, train_configs=configs)
    return {s: [r["loss"] for r in read_log(tmp_path / s)] for s in method.stages}, method


@pytest.mark.parametrize("name,language", [("pea", "de"), ("altclip", None), ("trikd", None)])
def test_training_from_the_exported_files_follows_the_world_run(name, language, world, exported, smoke_backbone,
                                                                tmp_path):
    """The round trip that proves the contract: the same batches, the same loss curve."""
    limited = World(dataclasses.replace(world.config, n_english=LIMIT, n_per_language=LIMIT, n_parallel=LIMIT))
    corpus = load_data_file(exported, image_size=32, index_dir=tmp_path / "index")
    from_world, _ = train_losses(name, smoke_backbone, limited, tmp_path / "world", language)
    from_files, _ = train_losses(name, smoke_backbone, corpus, tmp_path / "files", language)
    assert from_world.keys() == from_files.keys()
    for stage in from_world:
        assert from_files[stage] == pytest.approx(from_world[stage], rel=1e-5, abs=1e-6), stage


@pytest.fixture(scope="module")
def sd15_small():
    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs

    return build_sd15_backbone_from_configs(small=True, device="cpu")


@pytest.fixture(scope="module")
def format_files(world, exported, tmp_path_factory) -> dict[str, Path]:
    """The same regimes in three layouts: webdataset + Moses (the export), Parquet + TSV, CSV + Moses."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    root = tmp_path_factory.mktemp("formats")
    base = yaml.safe_load(exported.read_text())
    files = {"webdataset": exported}
    for fmt in ("parquet", "table"):
        data = {"languages": base["languages"], "image_size": 128, "english_image_text": None,
                "language_image_text": {}, "pivot_image_text": {}, "parallel_text": {}}
        regimes = [("english_image_text", "en", world.english_image_text(LIMIT))]
        regimes += [("pivot_image_text", lang, world.pivot_image_text(lang, LIMIT)) for lang in world.target_languages]
        for regime, lang, dataset in regimes:
            rows = [{"image": png(dataset[i]["pixel_values"]), "caption": dataset[i]["caption"],
                     "caption_en": dataset[i].get("caption_en", "")} for i in range(len(dataset))]
            if fmt == "parquet":
                pq.write_table(pa.Table.from_pylist(rows), root / f"{lang}.parquet")
                spec = {"format": "parquet", "files": f"{lang}.parquet", "english_column": "caption_en"}
            else:
                (root / "images" / lang).mkdir(parents=True, exist_ok=True)
                with open(root / f"{lang}.csv", "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["image", "caption", "caption_en"])
                    for i, row in enumerate(rows):
                        (root / "images" / lang / f"{i}.png").write_bytes(row["image"])
                        writer.writerow([f"images/{lang}/{i}.png", row["caption"], row["caption_en"]])
                spec = {"format": "table", "file": f"{lang}.csv", "english_column": "caption_en"}
            if regime == "english_image_text":
                data[regime] = spec
            else:
                data["pivot_image_text"][lang] = spec
                data["language_image_text"][lang] = spec
        for lang in world.target_languages:
            if fmt == "parquet":
                pairs = world.parallel_text(lang, LIMIT)
                (root / f"en-{lang}.tsv").write_text("".join(f"{pairs[i]['en']}\t{pairs[i]['target']}\n"
                                                             for i in range(len(pairs))))
                data["parallel_text"][lang] = {"format": "tsv", "file": f"en-{lang}.tsv", "columns": ["en", lang]}
            else:
                data["parallel_text"][lang] = {k: str(exported.parent / v) if k in ("english", "target") else v
                                               for k, v in base["parallel_text"][lang].items()}
        # English text only (the X2I recipe's data): the export's line files, by absolute path
        data["monolingual_text"] = {lang: {"format": "text", "file": str(exported.parent / spec["file"])}
                                    for lang, spec in base["monolingual_text"].items()}
        files[fmt] = root / f"{fmt}.yaml"
        files[fmt].write_text(yaml.safe_dump(data, allow_unicode=True))
    return files


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "table"])
def test_every_method_trains_on_the_sd15_code_path_from_each_format(fmt, format_files, sd15_small, tmp_path):
    """Images resized from the files' 32 px to the data file's 128 (webdataset: the small sd15 model's own
    resolution), VAE latents, the real CLIP tokenizer; every stage of every method takes steps."""
    from xlcore.registry import METHODS

    corpus = load_data_file(format_files[fmt], image_size=sd15_small.image_size, index_dir=tmp_path / "index")
    fingerprint = sd15_small.fingerprint()
    for name in METHODS.names():
        if name == "translate":  # on sd15 the translator is NLLB, loaded by id: nothing trains
            continue
        language = "de" if METHODS.get(name).per_language else None
        losses, method = train_losses(name, sd15_small, corpus, tmp_path / name, language, steps=1)
        assert all(np.isfinite(v).all() and len(v) == 1 for v in losses.values()), (name, losses)
        assert list(losses) == list(method.stages)
    assert sd15_small.fingerprint() == fingerprint
    sample = corpus.english_image_text()[0]["pixel_values"]
    assert sample.shape[-1] == (sd15_small.image_size if fmt == "webdataset" else 128)


def test_a_run_interrupted_inside_a_shard_resumes_at_the_same_sample(exported, tmp_path):
    from xlcore.train import TrainConfig, Trainer

    shards = str(exported.parent / "english" / "{000000..000002}.tar")
    config = TrainConfig(steps=8, batch_size=4, lr=0.05, warmup_steps=0, checkpoint_every_steps=3, log_every=1)
    straight = PixelMeanTask(sources.WebDatasetImageText(shards, "en"), tmp_path / "straight.jsonl")
    Trainer(straight, config, tmp_path / "a").fit()

    class Killed(PixelMeanTask):
        def loss(self, batch):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 5:  # during step 5, after the checkpoint of step 3
                raise KeyboardInterrupt
            return super().loss(batch)

    with pytest.raises(KeyboardInterrupt):
        Trainer(Killed(sources.WebDatasetImageText(shards, "en"), tmp_path / "resumed.jsonl"), config, tmp_path / "b").fit()
    resumed = PixelMeanTask(sources.WebDatasetImageText(shards, "en"), tmp_path / "resumed.jsonl")
    Trainer(resumed, config, tmp_path / "b").fit()
    assert torch.equal(resumed.model.weight, straight.model.weight)
    seen = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "straight.jsonl").read_text().splitlines()]
    # killed while training batch 4 (0-based), resumed from the checkpoint after batch 2: batches 3 and 4 are
    # read again, as the same samples, and the rest follow in the uninterrupted run's order
    assert seen == expected[:5] + expected[3:]


def test_two_processes_see_every_sample_of_an_epoch_exactly_once(exported, tmp_path):
    """Data parallel over shards: each global batch is split between the ranks, so an epoch's samples are
    seen once each across both processes, none twice, none lost."""
    job = REPO / "tests" / "sharding_job.py"
    shards = str(exported.parent / "english" / "{000000..000002}.tar")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             "29533", str(job), shards, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    per_rank = [[c for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines() for c in json.loads(line)]
                for r in (0, 1)]
    everything = sources.WebDatasetImageText(shards, "en")
    captions = sorted(everything[i]["caption"] for i in range(len(everything)))
    assert len(per_rank[0]) == len(per_rank[1]) == len(captions) // 2
    assert sorted(per_rank[0] + per_rank[1]) == captions  # an epoch: LIMIT samples, 6 steps of 4


def test_a_cell_trains_on_a_data_file_and_records_its_bad_samples(world, exported, tmp_path):
    """Through the harness: `data_file` reaches the cell, the method trains from the files, the run id
    names the data file, and the bad sample of the English shards is counted in the results table."""
    import yaml

    from xlcore.cell import Cell, CellRun

    broken = tmp_path / "broken.tar"
    write_tar(broken, [{"__key__": "nothing", "txt": b"A red circle"}])  # a caption without its image
    data = yaml.safe_load(exported.read_text())
    data["english_image_text"]["shards"] = [str(exported.parent / data["english_image_text"]["shards"]), str(broken)]
    path = tmp_path / "data.yaml"
    for regime in ("language_image_text", "pivot_image_text", "parallel_text", "monolingual_text"):
        for spec in data[regime].values():
            for key in ("shards", "english", "target", "file"):
                if key in spec:
                    spec[key] = str(exported.parent / spec[key])
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    run = CellRun(Cell("toy", "mulan", "de", 0), smoke=True, output_dir=tmp_path / "runs", data_file=str(path))
    world_run = CellRun(Cell("toy", "mulan", "de", 0), smoke=True, output_dir=tmp_path / "runs")
    assert run.training.data["data_file"] == str(path) and world_run.training.data is None
    assert run.training_id != world_run.training_id
    run.train()
    frame = run.results.read()
    bad = frame[(frame["benchmark"] == "data/english_image_text") & (frame["metric"] == "bad_samples")]
    assert bad["value"].tolist() == [1.0] and bad["language"].tolist() == ["en"]


def multi30k_like(world, root: Path, n: int = 6) -> Path:
    """A Multi30K task-1 layout (image list, one caption file per language) whose captions are world
    prompts (so the toy models can read them) and whose images are the prompts' renders."""
    from xlcore.world import image_to_tensor

    prompts = world.generation_prompts()[:n]
    (root / "task1" / "image_splits").mkdir(parents=True)
    (root / "images").mkdir()
    names = [f"{1000 + p.index}.png" for p in prompts]
    (root / "task1" / "image_splits" / "test_2016_flickr.txt").write_text("".join(f"{x}\n" for x in names))
    for lang in ("en", "de", "fr", "cs"):
        (root / "task1" / f"test_2016_flickr.{lang}").write_text("".join(p.captions[lang] + "\n" for p in prompts))
    for name, p in zip(names, prompts):
        (root / "images" / name).write_bytes(png(image_to_tensor(world.render(p))))
    return root


def test_a_cell_evaluates_on_real_prompts_and_benchmarks_from_the_data_file(world, exported, tmp_path):
    """The data file's evaluation section: Multi30K-style parallel captions as prompts (their images the
    FID references), a Multi30K retrieval benchmark, and no world metric on real prompts."""
    import yaml

    from xlcore.cell import Cell, CellRun

    root = multi30k_like(world, tmp_path / "multi30k")
    data = yaml.safe_load(exported.read_text())
    data = {"languages": data["languages"], "english_image_text": {
        "format": "webdataset", "shards": str(exported.parent / data["english_image_text"]["shards"])},
        "evaluation": {"prompts": {"format": "multi30k", "root": str(root), "image_dir": str(root / "images")},
                       "retrieval": [{"benchmark": "multi30k-task1", "root": str(root), "image_dir": str(root / "images"),
                                      "languages": ["en", "de"]}]}}
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    run = CellRun(Cell("toy", "english-backbone", "en", 0), smoke=True, output_dir=tmp_path / "runs", data_file=str(path),
                  n_prompts=4)
    measurements, result = run.evaluate()
    benchmarks = {m.benchmark for m in measurements}
    assert benchmarks == {"multi30k-task1/test_2016_flickr"}
    metrics = {k for m in measurements for k in m.metrics}
    assert {"consistency_clip_cos", "clip_score_raw_cos", "mean_recall"} <= metrics
    assert not {"compositional_all", "fid_scorer256"} & metrics  # the world scorer does not judge real prompts
    assert result.images["en"].shape[0] == 4
    untrained = CellRun(Cell("toy", "untrained", "de", 0), smoke=True, output_dir=tmp_path / "runs", data_file=str(path),
                        n_prompts=4)
    assert untrained.evaluation.data["data_file"] == str(path)
    measurements, _ = untrained.evaluate()
    languages = {m.language for m in measurements}
    assert languages == {"de"}


def test_cococrola_concept_lists_are_a_prompt_source(tmp_path):
    from xlcore.evaluate.prompt_sets import concepts

    (tmp_path / "concepts.csv").write_text("en,de,ja\ndog,Hund,犬\ncat,Katze,猫\n", encoding="utf-8")
    prompts = concepts(tmp_path / "concepts.csv", {"de": "ein Foto von {}"})
    assert prompts.languages == ("en", "de", "ja") and prompts.references(prompts.prompts(2)) is None
    assert prompts.prompts(2)[1].captions == {"en": "a photo of cat", "de": "ein Foto von Katze", "ja": "猫"}
    (tmp_path / "gap.csv").write_text("en,de\ndog,\n")
    with pytest.raises(DataFormatError, match="no 'de' word"):
        concepts(tmp_path / "gap.csv")


def test_the_shipped_sd15_data_file_parses_and_names_what_is_missing(tmp_path):
    corpus = load_data_file(REPO / "examples" / "data" / "sd15.yaml", image_size=512, index_dir=tmp_path)
    assert corpus.languages == ("en", "de", "fr", "cs", "zh", "ja")
    assert {r for r, given in corpus.sources.items() if given} == {"english_image_text", "language_image_text",
                                                                "pivot_image_text", "parallel_text"}
    assert corpus.evaluation is not None and corpus.description["image_size"] == 512
    with pytest.raises(MissingDataError, match=r"332 of 332 files not found: /data/cc3m/00000.tar"):
        corpus.english_image_text()


def test_dataloader_workers_read_shards_in_any_order_without_mixing_bytes(exported):
    """Workers forked from a process that has the shards open share its file offsets: reads must be
    positional (two workers seeking one descriptor read each other's bytes; found by the loader benchmark)."""
    shards = str(exported.parent / "english" / "{000000..000002}.tar")
    source = sources.WebDatasetImageText(shards, "en")
    expected = [source[i]["pixel_values"] for i in range(len(source))]  # opens every shard in this process
    order = np.random.default_rng(0).permutation(len(source)).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(source, order), batch_size=3, num_workers=2,
                                         collate_fn=lambda samples: torch.stack([s["pixel_values"] for s in samples]))
    read = torch.cat(list(loader))
    assert torch.equal(read, torch.stack([expected[i] for i in order]))


def test_two_machines_train_one_run_from_a_data_file_under_accelerate_launch(exported, tmp_path):
    """What examples/slurm/train_multinode.sbatch runs on each node, with two 'machines' on this host:
    two `accelerate launch --num_machines 2` (ranks 0 and 1) meet at the main process and train one run
    from the exported shards and parallel text; the SLURM script itself is checked for syntax."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
               "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", "29641"]
    train = ["-m", "xlcore", "train", "--method", "translate", "--smoke", "--data", str(exported),
             "--output-dir", str(tmp_path / "runs")]
    nodes = [subprocess.Popen(command + ["--machine_rank", str(rank)] + train, cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in (0, 1)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), outputs[0][-3000:] + outputs[1][-3000:]
    assert "training translate on 2 process(es)" in outputs[0]
    assert (tmp_path / "runs" / "toy" / "translate" / "all" / "0" / "train" / "method" / "method.json").exists()
    assert subprocess.run(["bash", "-n", str(REPO / "examples" / "slurm" / "train_multinode.sbatch")]).returncode == 0

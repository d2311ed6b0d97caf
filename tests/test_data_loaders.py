"""Tests of xlcore.data against excerpts of the real benchmark files (tests/fixtures/real/README.md)
and, where the shared copy is present, against the full files."""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from xlcore import data
from xlcore.errors import ConfigError, DataFormatError, MissingDataError, UnknownLanguageError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real"
MULTI30K = FIXTURES / "multi30k"
XTD10 = FIXTURES / "xtd10"
XM3600 = FIXTURES / "xm3600" / "captions.jsonl"
COCO_CN = FIXTURES / "coco-cn" / "merged_captions_coco-cn_test.json"
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"full benchmark files not present at {REAL}")

# Line 1 of each real caption file, verbatim.
TASK1_FIRST = {
    "en": "A man in an orange hat starring at something.",
    "de": "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    "fr": "Un homme avec un chapeau orange regardant quelque chose.",
    "cs": "Muž v oranžovém klobouku na něco zírá.",
}
XTD10_FIRST = {
    "en": "major league baseball game with player from pittsburgh pirates crossing home plate",
    "es": "partido de béisbol de gran liga con jugador de los pittsburgh pirates cruzando la base del plateador",
    "it": "partita di baseball della major league con giocatore dei pittsburgh pirates che supera la casa base",
    "ko": "본루를 가로질러 피츠버그 파이리츠에 선수와 메이저 리그 야구 게임",
    "pl": "gracz drużyny Pittsburgh Pirates zdobywa bazę domową w meczu ligowym Major League Baseball",
    "ru": "игра основной бейсбольной лиги",
    "tr": "kaleye geçen bir Pittsburgh Pirates oyuncusu ile büyük beyzbol ligi oyunu",
    "zh": "棒球大联盟联赛上，匹兹堡海盗队的球员穿过本垒",
    "de": "Oberliga Basketball Spiel mit Spieler von Pittsburgh Pirates gehen durch die Heimat",
    "fr": "majeure partie de la Ligue de baseball avec lecteur de Pirates de Pittsburgh franchissant plaque de la maison",
    "ja": "黒いユニフォームのランナーがホームに帰ってきた",
}
TASK2_DE_IMAGE1 = (
    "Der Mann trägt eine orange Wollmütze.",
    "Ein Mann mit Brille mit einem auffälligen, oragen Hut.",
    "Ein Mann mit Brille trägt einen auffälligen, orangefarbenen Hut.",
    "EIn Mann mit Brille und orangefarbenem Häkelhut beobachtet etwas.",
    "mann trägt blitz bier hut",
)


def copy_fixture(name: str, tmp_path: Path) -> Path:
    """A writable copy of one fixture folder, to corrupt."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def at(path: Path, line: int | None = None) -> str:
    """The regex for the start of a DataFormatError message: file name and line."""
    return re.escape(f"{path}, line {line}" if line is not None else str(path))


# --- loading the fixtures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "de", "fr", "cs"])
def test_multi30k_task1(language: str) -> None:
    bench = data.load_multi30k_task1(MULTI30K, language)
    assert bench.name == "multi30k-task1/test_2016_flickr"
    assert bench.language == language
    assert len(bench) == 5
    assert bench.image_ids[:2] == ("1007129816.jpg", "1009434119.jpg")
    assert bench.captions[0] == (TASK1_FIRST[language],)
    assert all(len(group) == 1 for group in bench.captions)
    assert bench.protocol == "all-captions"
    assert bench.image_dir is None
    assert str(MULTI30K / "task1" / f"test_2016_flickr.{language}") in bench.source


def test_multi30k_task1_reads_gz_in_repository_layout(tmp_path: Path) -> None:
    # The repository ships data/task1/raw/<split>.<lang>.gz; a clone's data/ folder must work as root.
    root = copy_fixture("multi30k", tmp_path)
    plain = root / "task1" / "test_2016_flickr.de"
    (root / "task1" / "raw").mkdir()
    (root / "task1" / "raw" / "test_2016_flickr.de.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    bench = data.load_multi30k_task1(root, "de")
    assert bench.captions == data.load_multi30k_task1(MULTI30K, "de").captions
    assert bench.source.endswith("raw/test_2016_flickr.de.gz")


def test_multi30k_task2_has_five_captions_per_image() -> None:
    bench = data.load_multi30k_task2(MULTI30K, "de")
    assert bench.name == "multi30k-task2/test_2016"
    assert len(bench) == 5
    assert bench.image_ids[0] == "1007129816.jpg"
    assert bench.captions[0] == TASK2_DE_IMAGE1
    assert all(len(group) == 5 for group in bench.captions)
    assert bench.protocol == "all-captions"
    texts, owners = bench.flat_captions()
    assert len(texts) == 25
    assert owners == [i for i in range(5) for _ in range(5)]
    assert texts[:5] == list(TASK2_DE_IMAGE1)

    first = bench.first_caption_only()
    assert first.protocol == "first-caption"
    assert first.captions[0] == ("Der Mann trägt eine orange Wollmütze.",)
    assert first.image_ids == bench.image_ids


def test_multi30k_task2_en_line1() -> None:
    bench = data.load_multi30k_task2(MULTI30K, "en")
    assert bench.captions[0][0] == "The man with pierced ears is wearing glasses and an orange hat."


@pytest.mark.parametrize("language", sorted(XTD10_FIRST))
def test_xtd10(language: str) -> None:
    bench = data.load_xtd10(XTD10, language)
    assert bench.name == "xtd10"
    assert bench.language == language
    assert len(bench) == 5
    assert bench.image_ids[0] == "COCO_train2014_000000061844.jpg"
    assert bench.captions[0] == (XTD10_FIRST[language],)


def test_xtd10_japanese_reads_the_jp_file() -> None:
    assert data.load_xtd10(XTD10, "ja").source.endswith("STAIR/test_1kcaptions_jp.txt")
    with pytest.raises(UnknownLanguageError, match="'jp'.*ja"):
        data.load_xtd10(XTD10, "jp")


def test_xtd10_accepts_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    # Seven files of the XTD10 repository are stored this way.
    root = copy_fixture("xtd10", tmp_path)
    for name in ("XTD10/test_image_names.txt", "XTD10/test_1kcaptions_es.txt"):
        path = root / name
        path.write_bytes(path.read_bytes().rstrip(b"\n").replace(b"\n", b"\r\n"))
    bench = data.load_xtd10(root, "es")
    assert bench.image_ids == data.load_xtd10(XTD10, "es").image_ids
    assert bench.captions == data.load_xtd10(XTD10, "es").captions


def test_xtd10_warns_about_placeholder_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_fixture("xtd10", tmp_path)
    path = root / "MIC" / "test_1kcaptions_de.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "Could not translate"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="xlcore.data"):
        bench = data.load_xtd10(root, "de")
    assert bench.captions[2] == ("Could not translate",)
    assert "line(s) 3" in caplog.text


def test_xm3600_protocols() -> None:
    every = data.load_xm3600(XM3600, "en")
    assert every.name == "xm3600"
    assert every.protocol == "all-captions"
    assert every.image_ids == ("0000000000000001.jpg", "0000000000000002.jpg", "0000000000000003.jpg")
    assert [len(group) for group in every.captions] == [2, 3, 2]
    assert every.captions[1][2] == "Two small kids running on the sand."
    assert len(every.flat_captions()[0]) == 7

    first = data.load_xm3600(XM3600, "en", protocol="first-caption")
    assert first.protocol == "first-caption"
    assert first.captions == (
        ("A red bicycle leaning against a brick wall.",),
        ("Two children playing with a ball on the beach.",),
        ("A bowl of noodle soup on a wooden table.",),
    )
    assert first == every.first_caption_only()


def test_xm3600_other_language_and_bad_protocol() -> None:
    bench = data.load_xm3600(XM3600, "zh")
    assert [len(group) for group in bench.captions] == [2, 1, 2]
    assert bench.captions[0][0] == "一辆红色自行车靠在砖墙上"
    with pytest.raises(ConfigError, match="all-captions, first-caption"):
        data.load_xm3600(XM3600, "en", protocol="first")


def test_coco_cn() -> None:
    bench = data.load_coco_captions_json(COCO_CN, name="coco-cn", language="zh")
    assert bench.name == "coco-cn"
    assert bench.language == "zh"
    assert bench.image_ids == (
        "COCO_val2014_000000412975.jpg", "COCO_train2014_000000179672.jpg",
        "COCO_train2014_000000481101.jpg", "COCO_train2014_000000553085.jpg",
    )
    # Annotation order: the 'cn' sentence first, then the five 'zhm' ones; word-segmented text kept as is.
    assert bench.captions[0][0] == "一个 女孩 走 下 台阶"
    assert bench.captions[0][1] == "一个 穿 着 短裤 的 女人 走过 一 条 街"
    assert [len(group) for group in bench.captions] == [6, 6, 6, 7]
    assert bench.protocol == "all-captions"


def test_coco_json_drops_uncaptioned_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = json.loads(COCO_CN.read_text(encoding="utf-8"))
    doc["images"].append({"file_name": "COCO_val2014_000000000001.jpg", "id": 999999})
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="xlcore.data"):
        bench = data.load_coco_captions_json(path, name="coco-cn", language="zh")
    assert len(bench) == 4
    assert "COCO_val2014_000000000001.jpg" not in bench.image_ids
    assert "1 of 5 images have no caption" in caplog.text and "999999" in caplog.text


def test_coco_json_annotation_for_unknown_image(tmp_path: Path) -> None:
    doc = json.loads(COCO_CN.read_text(encoding="utf-8"))
    doc["annotations"][3]["image_id"] = 424242
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path) + r".*annotations\[3\].*424242"):
        data.load_coco_captions_json(path, name="coco-cn", language="zh")


def test_coco_json_missing_key_and_invalid_json(tmp_path: Path) -> None:
    doc = json.loads(COCO_CN.read_text(encoding="utf-8"))
    del doc["images"][2]["file_name"]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path) + r".*images\[2\] has no key 'file_name'"):
        data.load_coco_captions_json(path, name="coco-cn", language="zh")
    path.write_text('{"images": [],\n "annotations": [}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 2) + ": invalid JSON"):
        data.load_coco_captions_json(path, name="coco-cn", language="zh")


# --- the dispatcher ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "root", "language", "kw", "count"),
    [
        ("multi30k-task1", MULTI30K, "fr", {}, 5),
        ("multi30k-task2", MULTI30K, "en", {"split": "test_2016"}, 5),
        ("xtd10", XTD10, "ko", {}, 5),
        ("xm3600", XM3600.parent, "ja", {"protocol": "first-caption"}, 3),
        ("coco-cn", COCO_CN.parent, "zh", {}, 4),
        ("stair", COCO_CN, "ja", {}, 4),  # any COCO-style JSON file; STAIR's own is not in the fixtures
    ],
)
def test_load_benchmark(name: str, root: Path, language: str, kw: dict, count: int) -> None:
    bench = data.load_benchmark(name, root, language, **kw)
    assert len(bench) == count
    assert bench.language == language
    assert bench.name.split("/")[0] == name
    assert language in data.supported_languages(name)


def test_unknown_benchmark_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'flickr30k'.*multi30k-task1.*xtd10.*xm3600.*coco-cn.*stair"):
        data.load_benchmark("flickr30k", MULTI30K, "en")
    with pytest.raises(ConfigError, match="'xtd11'"):
        data.supported_languages("xtd11")


def test_supported_languages() -> None:
    assert data.supported_languages("multi30k-task1") == ("en", "de", "fr", "cs")
    assert data.supported_languages("multi30k-task2") == ("en", "de")
    assert len(data.supported_languages("xtd10")) == 11
    assert len(data.supported_languages("xm3600")) == 36
    assert data.supported_languages("coco-cn") == ("zh",)


# --- errors -----------------------------------------------------------------------------------------------


def test_mismatched_line_counts(tmp_path: Path) -> None:
    root = copy_fixture("multi30k", tmp_path)
    path = root / "task1" / "test_2016_flickr.en"
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 5) + ": 4 captions but 5 images") as info:
        data.load_multi30k_task1(root, "en")
    assert info.value.line == 5 and info.value.path == str(path)

    path = root / "task2" / "test_2016.3.de"
    path.write_text(path.read_text(encoding="utf-8") + "Ein zusätzlicher Satz.\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 6) + ": 6 captions but 5 images"):
        data.load_multi30k_task2(root, "de")


def test_empty_line(tmp_path: Path) -> None:
    root = copy_fixture("xtd10", tmp_path)
    path = root / "XTD10" / "test_1kcaptions_it.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "  "
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 3) + ": empty line"):
        data.load_xtd10(root, "it")


def test_duplicate_image_in_list(tmp_path: Path) -> None:
    root = copy_fixture("xtd10", tmp_path)
    path = root / "XTD10" / "test_image_names.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 5) + ".*already listed on line 2"):
        data.load_xtd10(root, "en")


def test_bad_utf8(tmp_path: Path) -> None:
    root = copy_fixture("multi30k", tmp_path)
    path = root / "task1" / "test_2016_flickr.de"
    lines = path.read_bytes().split(b"\n")
    lines[3] = "Ein Mädchen mit einem Ball.".encode("latin-1")  # as if one line had been re-encoded
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=at(path, 4) + ": not valid UTF-8"):
        data.load_multi30k_task1(root, "de")


def test_bad_json_line_and_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "captions.jsonl"
    lines = XM3600.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1][:-5], lines[2]]) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 2) + ": invalid JSON"):
        data.load_xm3600(path, "en")

    record = json.loads(lines[2])
    del record["image/key"]
    path.write_text("\n".join([lines[0], lines[1], json.dumps(record)]) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 3) + ": .*'image/key'"):
        data.load_xm3600(path, "en")

    # 'fi' is an XM3600 language, but the hand-made fixture has only en, de, fr, ja, zh.
    with pytest.raises(DataFormatError, match=at(XM3600, 1) + ": .*'fi'"):
        data.load_xm3600(XM3600, "fi")


def test_xm3600_empty_caption_list_and_repeated_key(tmp_path: Path) -> None:
    path = tmp_path / "captions.jsonl"
    records = [json.loads(line) for line in XM3600.read_text(encoding="utf-8").splitlines()]
    records[1]["de"]["caption"] = []
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 2) + ": image 0000000000000002 has no 'de' caption"):
        data.load_xm3600(path, "de")

    records = [records[0], records[0]]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(DataFormatError, match=at(path, 2) + ": .*already appeared on line 1"):
        data.load_xm3600(path, "en")


@pytest.mark.parametrize(
    ("loader", "root", "supported"),
    [
        (data.load_multi30k_task1, MULTI30K, "en, de, fr, cs"),
        (data.load_multi30k_task2, MULTI30K, "en, de"),
        (data.load_xtd10, XTD10, "en, es, it"),
        (data.load_xm3600, XM3600, "ar, bn, cs"),
    ],
)
def test_unknown_language(loader, root: Path, supported: str) -> None:
    with pytest.raises(UnknownLanguageError, match=f"unknown language 'xx'; supported languages: {supported}"):
        loader(root, "xx")


def test_unknown_language_for_coco_json_benchmarks() -> None:
    with pytest.raises(UnknownLanguageError, match="supported languages: zh"):
        data.load_coco_captions_json(COCO_CN, name="coco-cn", language="en")


def test_missing_caption_file_says_where_it_is_published(tmp_path: Path) -> None:
    root = copy_fixture("multi30k", tmp_path)
    (root / "task1" / "test_2016_flickr.cs").unlink()
    expected = re.escape(str(root / "task1" / "test_2016_flickr.cs"))
    with pytest.raises(MissingDataError, match=expected + r" not found.*github\.com/multi30k/dataset"):
        data.load_multi30k_task1(root, "cs")
    with pytest.raises(MissingDataError, match=r"test_image_names\.txt not found.*adobe-research"):
        data.load_xtd10(tmp_path / "nowhere", "en")
    with pytest.raises(MissingDataError, match=r"captions\.jsonl not found.*crossmodal-3600"):
        data.load_benchmark("xm3600", tmp_path, "en")
    with pytest.raises(MissingDataError, match=r"merged_captions_coco-cn_test\.json not found.*li-xirong/coco-cn"):
        data.load_benchmark("coco-cn", tmp_path, "zh")


def test_missing_image_folder(tmp_path: Path) -> None:
    folder = tmp_path / "no-such-images"
    with pytest.raises(MissingDataError, match=re.escape(str(folder))):
        data.load_xtd10(XTD10, "en", image_dir=folder)
    with pytest.raises(MissingDataError, match=re.escape(str(folder))):
        data.load_xm3600(XM3600, "en", image_dir=folder)


def test_image_paths(tmp_path: Path) -> None:
    bench = data.load_multi30k_task1(MULTI30K, "en", image_dir=tmp_path)
    for image_id in bench.image_ids[:3]:
        (tmp_path / image_id).write_bytes(b"")
    with pytest.raises(MissingDataError, match=r"2 of 5 images .* missing from " + re.escape(str(tmp_path))) as info:
        bench.image_paths()
    assert "101362133.jpg" not in str(info.value)
    assert all(image_id in str(info.value) for image_id in bench.image_ids[3:])

    for image_id in bench.image_ids[3:]:
        (tmp_path / image_id).write_bytes(b"")
    assert bench.image_paths() == [tmp_path / image_id for image_id in bench.image_ids]

    with pytest.raises(MissingDataError, match="without an image folder; pass image_dir="):
        data.load_multi30k_task1(MULTI30K, "en").image_paths()


# --- the full files, where the shared copy exists ----------------------------------------------------------


@needs_real
@pytest.mark.parametrize("language", ["en", "de", "fr", "cs"])
def test_real_multi30k_task1(language: str) -> None:
    bench = data.load_multi30k_task1(REAL / "multi30k", language)
    assert len(bench) == 1000
    assert bench.captions[0] == (TASK1_FIRST[language],)
    assert len(data.load_multi30k_task1(REAL / "multi30k", language, split="val")) == 1014


@needs_real
def test_real_multi30k_task2() -> None:
    bench = data.load_multi30k_task2(REAL / "multi30k", "de")
    assert len(bench) == 1000
    assert len(bench.flat_captions()[0]) == 5000
    assert bench.captions[0] == TASK2_DE_IMAGE1


@needs_real
def test_real_xtd10(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="xlcore.data"):
        for language in data.supported_languages("xtd10"):
            bench = data.load_xtd10(REAL / "xtd10", language)
            assert len(bench) == 1000
            assert bench.captions[0] == (XTD10_FIRST[language],)
    # MIC de holds 'Could not translate' on lines 148, 241, 727 and '?' on 262, 768.
    assert "line(s) 148, 241, 262, 727, 768" in caplog.text


@needs_real
def test_real_coco_cn() -> None:
    bench = data.load_benchmark("coco-cn", REAL / "coco-cn", "zh")
    assert len(bench) == 1000
    assert len(bench.flat_captions()[0]) == 6033
    counts = [len(group) for group in bench.captions]
    assert counts.count(6) == 967 and counts.count(7) == 33
    assert bench.image_ids[0] == "COCO_val2014_000000412975.jpg"
    assert bench.captions[0][0] == "一个 女孩 走 下 台阶"

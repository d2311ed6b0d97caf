"""`xlcore export-world`: the built-in world's training regimes written in the formats real corpora come in.

    OUT/english/000000.tar ...        English image-text, webdataset shards (KEY.png, KEY.txt, KEY.json)
    OUT/<lang>/000000.tar ...         each target language's image-text; the json also carries the English
                                      caption of the same scene (`captions.en`) where English can name it,
                                      so the same shards serve `language_image_text` and `pivot_image_text`
    OUT/parallel/en-<lang>.en|.<lang> parallel text, Moses / OPUS line-aligned files
    OUT/monolingual/<lang>.txt        monolingual text, one sentence per line
    OUT/data.yaml                     the data file naming all of them (relative paths)

Images are PNG (lossless), so training from these files sees exactly the world's pixels: the round trip
that proves the data contract (`tests/test_real_data.py` trains from both and compares the losses).
Item i of every regime is sample i of its files, in order, so the first n the methods ask for are the
same samples either way.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_shards(folder: Path, samples, count: int, shard_size: int, desc: str) -> str:
    """Write `count` samples into tar shards of `shard_size`; returns their brace pattern (relative)."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, -(-count // shard_size))
    writer = None
    for index, sample in enumerate(tqdm(samples, total=count, desc=desc, unit="sample")):
        if index % shard_size == 0:
            if writer is not None:
                writer.close()
            writer = wds.TarWriter(str(folder / f"{index // shard_size:06d}.tar"))
        writer.write(sample)
        if index + 1 == count:
            break
    if writer is not None:
        writer.close()
    last = shards - 1
    return f"{folder.name}/{{000000..{last:06d}}}.tar" if last else f"{folder.name}/000000.tar"


def export_world(world, out: str | Path, *, limit: int | None = None, shard_size: int = 1000) -> Path:
    """Write `world`'s regimes under `out` (at most `limit` samples each) and the data file; returns it."""
    import yaml

    from ..world.grammars import get_grammar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = world.config

    def capped(n: int) -> int:
        return min(n, limit) if limit else n

    english = world.english_image_text(capped(config.n_english))

    def english_samples():
        for i in range(len(english)):
            item = english.item(i)
            caption = item.captions["en"]
            yield {"__key__": f"{i:09d}", "png": _png(world.render(item)), "txt": caption.encode(),
                   "json": json.dumps({"caption": caption, "language": "en"}, ensure_ascii=False).encode()}

    data: dict = {"languages": list(world.languages), "validate_images": "decode",
                  "english_image_text": {"format": "webdataset", "shards": _write_shards(
                      out / "english", english_samples(), len(english), shard_size, "export: english")},
                  "language_image_text": {}, "pivot_image_text": {}, "parallel_text": {}, "monolingual_text": {}}
    for lang in world.target_languages:
        own = world.language_image_text(lang, capped(config.n_per_language))

        def own_samples(own=own, lang=lang):
            for i in range(len(own)):
                item = own.item(i)
                caption = item.captions[lang]
                captions = {lang: caption}
                if item.scene.culture_language is None:  # English has no word for a culture concept
                    captions["en"] = get_grammar("en").describe(item.scene, item.relation, item.template)
                meta = {"caption": caption, "language": lang, "captions": captions}
                yield {"__key__": f"{i:09d}", "png": _png(world.render(item)), "txt": caption.encode(),
                       "json": json.dumps(meta, ensure_ascii=False).encode()}

        pattern = _write_shards(out / lang, own_samples(), len(own), shard_size, f"export: {lang}")
        data["language_image_text"][lang] = {"format": "webdataset", "shards": pattern}
        data["pivot_image_text"][lang] = {"format": "webdataset", "shards": pattern}
        parallel = world.parallel_text(lang, capped(config.n_parallel))
        (out / "parallel").mkdir(exist_ok=True)
        pairs = [parallel[i] for i in range(len(parallel))]
        (out / "parallel" / f"en-{lang}.en").write_text("".join(p["en"] + "\n" for p in pairs), encoding="utf-8")
        (out / "parallel" / f"en-{lang}.{lang}").write_text("".join(p["target"] + "\n" for p in pairs), encoding="utf-8")
        data["parallel_text"][lang] = {"format": "moses", "english": f"parallel/en-{lang}.en",
                                       "target": f"parallel/en-{lang}.{lang}"}
    for lang in world.languages:
        text = world.monolingual_text(lang, capped(config.n_monolingual))
        (out / "monolingual").mkdir(exist_ok=True)
        (out / "monolingual" / f"{lang}.txt").write_text("".join(text[i]["text"] + "\n" for i in range(len(text))),
                                                         encoding="utf-8")
        data["monolingual_text"][lang] = {"format": "text", "file": f"monolingual/{lang}.txt"}
    path = out / "data.yaml"
    header = ("# The built-in world's training regimes as files (xlcore export-world); train on them with\n"
              f"#   python -m xlcore train --method <name> --data {path}\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    log.info("exported the world to %s", out)
    return path

"""Data: what methods train on and what the study evaluates on, in the formats people have.

- `xlcore.data.corpus`: the data contract every training stage reads (`Corpus`: the regimes, per
  language), implemented by the built-in world and by `RealCorpus`, which a data file builds;
- `xlcore.data.sources`: readers for webdataset shards, Parquet / Arrow, CSV / TSV image lists and
  parallel or monolingual text, each a map-style dataset with bad samples counted and skipped;
- `xlcore.data.datafile`: the data file (YAML or JSON) that names a source per regime and language;
- `xlcore.data.export`: the built-in world written out in those formats (`xlcore export-world`);
- `xlcore.data.benchmarks`: the retrieval benchmarks (Multi30K, XTD10, XM3600, COCO-CN, STAIR) read
  from their published files, re-exported here.
"""

from .benchmarks import (ALL_CAPTIONS, COCO_CN_TEST_FILE, FIRST_CAPTION, PROTOCOLS, XM3600_CAPTIONS_FILE,
                         RetrievalBenchmark, load_benchmark, load_coco_captions_json, load_multi30k_task1,
                         load_multi30k_task2, load_xm3600, load_xtd10, supported_languages)

__all__ = ["ALL_CAPTIONS", "COCO_CN_TEST_FILE", "FIRST_CAPTION", "PROTOCOLS", "RetrievalBenchmark",
           "XM3600_CAPTIONS_FILE", "load_benchmark", "load_coco_captions_json", "load_multi30k_task1",
           "load_multi30k_task2", "load_xm3600", "load_xtd10", "supported_languages"]

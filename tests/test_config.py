"""Config dataclasses: help texts, presets, type-checked overrides, hashing and the smoke switch."""

import dataclasses
import json

import pytest

from xlcore.settings import resolve_study

from xlcore.config import (PRESETS, StudyConfig, WorldConfig, apply_smoke, config_hash, from_dict, help_texts,
                           load_preset, override, parse_override, to_dict)
from xlcore.errors import ConfigError
from xlcore.registry import METHODS


def test_every_field_has_a_help_text():
    texts = help_texts(StudyConfig)
    assert "world.n_english" in texts and "smoke" in texts
    assert all(len(text) > 10 for text in texts.values())


def test_presets_exist_and_differ():
    assert {"toy", "sd15"} <= set(PRESETS)
    assert load_preset("toy").preset == "toy"
    assert load_preset("sd15").world.image_size == 64
    with pytest.raises(ConfigError, match="unknown preset 'sd99'; presets: sd15, toy"):
        load_preset("sd99")


def test_smoke_shrinks_every_size_that_declares_a_smoke_value():
    full, smoke = load_preset("toy"), load_preset("toy", smoke=True)
    assert smoke.smoke is True
    for f in dataclasses.fields(WorldConfig):
        if "smoke" in f.metadata:
            assert getattr(smoke.world, f.name) == f.metadata["smoke"] < getattr(full.world, f.name)
    assert smoke.world.seed == full.world.seed  # fields without a smoke value are untouched
    assert apply_smoke(apply_smoke(full.world)) == apply_smoke(full.world)


def test_overrides_are_type_checked_and_unknown_fields_rejected():
    config = override(load_preset("toy"), **{"world.seed": 3, "world.p_culture": 1})
    assert config.world.seed == 3 and config.world.p_culture == 1.0
    with pytest.raises(ConfigError, match="expected an integer, got str 'three'"):
        override(config, **{"world.seed": "three"})
    with pytest.raises(ConfigError, match="expected true/false"):
        override(config, smoke="yes")
    with pytest.raises(ConfigError, match="unknown field 'world.colour'"):
        override(config, **{"world.colour": 1})
    with pytest.raises(ConfigError, match="unknown field"):
        from_dict(WorldConfig, {"sed": 1})
    with pytest.raises(ConfigError, match=r"expected a list"):
        override(config, **{"world.languages": "en"})


def test_a_field_added_after_runs_were_recorded_can_be_set_and_keeps_old_hashes_at_its_default():
    from xlcore.methods._base import default_config

    pea = default_config("pea")
    changed = override(pea, hybrid_masking="upstream")  # an `added` field at its default is still settable
    assert changed.hybrid_masking == "upstream" and config_hash(changed) != config_hash(pea)
    assert "hybrid_masking" not in to_dict(pea) and to_dict(pea, complete=True)["hybrid_masking"] == "denoise_all"
    study = resolve_study("toy", overrides={"pea.hybrid_masking": "upstream"})
    assert study.methods["pea"].hybrid_masking == "upstream"


def test_round_trip_and_hash_are_stable():
    config = load_preset("toy", overrides={"seed": 4})
    assert from_dict(StudyConfig, to_dict(config)) == config
    assert config_hash(config) == config_hash(load_preset("toy", overrides={"seed": 4}))
    assert config_hash(config) != config_hash(load_preset("toy"))
    assert len(config_hash(config)) == 12


def test_parse_override_reads_json_or_text():
    assert parse_override("world.seed=3") == ("world.seed", 3)
    assert parse_override("output_dir=runs/x") == ("output_dir", "runs/x")
    assert parse_override('world.languages=["en","de"]') == ("world.languages", ["en", "de"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("seed")


def test_results_path_lives_under_the_preset():
    config = load_preset("toy", overrides={"output_dir": "/tmp/x"})
    assert str(config.results_path) == "/tmp/x/toy/results.csv"




@pytest.mark.parametrize("method", sorted(METHODS.names()))
def test_a_method_config_read_back_from_its_json_hashes_the_same(method):
    """The sweep hashes the settings it holds, the cell the ones it reads from config.json: one number
    written two ways (4 and 4.0 epochs) made the sweep rerun finished cells."""
    from xlcore.methods._base import default_config

    config = default_config(method)
    read_back = from_dict(type(config), json.loads(json.dumps(to_dict(config))))
    assert read_back == config and config_hash(read_back) == config_hash(config)

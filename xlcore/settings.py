"""The study's settings as one tree: the study config with every method's config inside, resolved once.

`resolve_study(preset, smoke=, overrides=)` builds it: the preset's study settings, each registered
method's settings for that preset (`Method.config_for_preset`, a variant's changes on top) under
`methods.<name>`, `smoke` applied to all of them, then the overrides. Overrides are dotted names:
study fields (`evaluation.n_prompts`), or a method's fields as `methods.<name>.<field>` or, shorter,
`<name>.<field>` (`pea.train.lr=1e-5`).

The resolved tree is written to a cell's folder as `config.json` (`write_study_config`) and read back
there (`read_study_config`): the sweep resolves it once and hands each cell the file, the notebook and
`xlcore config --file` read it, so settings reach a cell whole, in one form (big_vision's single config).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from .config import StudyConfig, apply_smoke, from_dict, load_preset, override, to_dict
from .errors import ConfigError, DataFormatError
from .registry import METHODS

METHODS_FIELD = "methods"


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(study overrides, {method: its overrides}) from dotted names."""
    study: dict[str, Any] = {}
    methods: dict[str, dict[str, Any]] = {}
    known = set(METHODS.names())
    for key, value in overrides.items():
        parts = key.split(".")
        if parts[0] == METHODS_FIELD and len(parts) >= 3:
            parts = parts[1:]
        elif parts[0] == METHODS_FIELD:
            raise ConfigError(f"override {key!r}: name a method's field, e.g. methods.pea.train.lr")
        if parts[0] in known and len(parts) >= 2:
            methods.setdefault(parts[0], {})[".".join(parts[1:])] = value
        elif parts[0] in known:
            raise ConfigError(f"override {key!r}: name a field of {parts[0]}'s config, e.g. {parts[0]}.train.lr")
        else:
            study[key] = value
    return study, methods


def smoke_study(study: StudyConfig) -> StudyConfig:
    """`study` shrunk by `smoke`: its own fields and every method's config (each field's smoke value)."""
    methods = {name: apply_smoke(method_config(study, name)) for name in _method_names(study)}
    return dataclasses.replace(apply_smoke(study), smoke=True, methods=methods)


def resolve_study(preset: str = "toy", *, smoke: bool = False, overrides: Mapping[str, Any] | None = None,
                  base: StudyConfig | None = None) -> StudyConfig:
    """The whole settings tree of a study on `preset` (or on top of the resolved `base`), see the module."""
    study_changes, method_changes = _split_overrides(dict(overrides or {}))
    smoke = smoke or bool(study_changes.pop("smoke", False))
    if base is None:
        study = load_preset(preset)
        study = dataclasses.replace(study, methods={name: _default(name, preset) for name in METHODS.names()})
        if smoke:
            study = smoke_study(study)
    else:
        study = smoke_study(base) if smoke and not base.smoke else base
    methods = {name: method_config(study, name) for name in _method_names(study)}
    if study_changes:
        study = override(dataclasses.replace(study, methods={}), **study_changes)
    for name, changes in method_changes.items():
        methods[name] = override(methods[name], **changes)
    return dataclasses.replace(study, methods=methods)


def _default(name: str, preset: str) -> Any:
    from .methods._base import default_config

    return default_config(name, preset)


def _method_names(study: StudyConfig) -> list[str]:
    return sorted(set(study.methods) | set(METHODS.names()))


def method_config(study: StudyConfig, name: str) -> Any:
    """Method `name`'s config in `study`, typed; its preset settings (smoke-shrunk with the study) where
    the tree has no entry for it (a config written before the method existed, or a bare preset)."""
    cls = METHODS.get(name)
    value = study.methods.get(name)
    if value is None:
        config = _default(name, study.preset)
        return apply_smoke(config) if study.smoke else config
    if isinstance(value, cls.config_class):
        return value
    if isinstance(value, Mapping):
        return from_dict(cls.config_class, dict(value), where=f"{METHODS_FIELD}.{name}")
    raise ConfigError(f"{METHODS_FIELD}.{name} must be a {cls.config_class.__name__} or a mapping of its fields, "
                      f"got {type(value).__name__}")


def study_from_dict(data: Mapping[str, Any], where: str = "StudyConfig") -> StudyConfig:
    """A resolved study config from plain data (every value type-checked, method configs included)."""
    data = dict(data)
    raw_methods = data.pop(METHODS_FIELD, {}) or {}
    if not isinstance(raw_methods, Mapping):
        raise ConfigError(f"{where}.{METHODS_FIELD} must map method names to their settings")
    study = from_dict(StudyConfig, data, where=where)
    methods = {}
    for name, value in raw_methods.items():
        if name not in METHODS:
            raise ConfigError(f"{where}.{METHODS_FIELD}: {name!r} is not a registered method ({', '.join(METHODS.names())})")
        methods[name] = from_dict(METHODS.get(name).config_class, dict(value), where=f"{where}.{METHODS_FIELD}.{name}")
    return dataclasses.replace(study, methods=methods)


def write_study_config(study: StudyConfig, path: str | Path) -> Path:
    """Write the resolved tree as JSON (atomically: a reader never sees half a file)."""
    from .results import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(to_dict(study), indent=2, sort_keys=True) + "\n").encode())
    return path


def read_study_config(path: str | Path) -> StudyConfig:
    """The study config a `write_study_config` file holds; a missing or malformed file is an error naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(path, "config file not found") from None
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"not valid JSON ({err.msg})", line=err.lineno) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, "expected a JSON object of study settings")
    try:
        return study_from_dict(data, where=str(path))
    except ConfigError as err:
        raise DataFormatError(path, str(err)) from None


__all__ = ["method_config", "read_study_config", "resolve_study", "smoke_study", "study_from_dict",
           "write_study_config"]

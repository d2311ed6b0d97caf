"""The results table: one tidy, append-only CSV that every figure and table is drawn from.

One row per (run_id, preset, method, stage, language, benchmark, metric, value), with the protocol
choices that the number depends on, free-text notes (deviations, "oracle upper bound"...), the config
hash, seed, git commit, hardware and a UTC timestamp beside it. The config itself is kept once per
hash in `configs/<hash>.json` next to the table.

Why CSV and not Parquet: the toy study's table is committed, so it should diff line by line in git and
be readable without pyarrow; at this study's size (thousands to tens of thousands of rows) a CSV loads in
milliseconds. Why atomic rewrite: every append writes the whole table to a temporary file in the same
folder, fsyncs it and renames it over the old one, under an exclusive lock, so a crash mid-write leaves
the previous version intact and concurrent sweep workers never interleave rows.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from . import provenance
from .config import config_hash, to_dict
from .errors import DataFormatError

log = logging.getLogger(__name__)

KEY_COLUMNS = ("run_id", "preset", "method", "stage", "language", "benchmark", "metric", "value")
CONTEXT_COLUMNS = ("protocol", "notes", "config_hash", "seed", "git_commit", "hardware", "timestamp")
COLUMNS = KEY_COLUMNS + CONTEXT_COLUMNS


@dataclass(frozen=True)
class ResultRow:
    """One measured number and everything needed to know what it means."""

    run_id: str
    preset: str
    method: str
    stage: str
    language: str
    benchmark: str
    metric: str
    value: float
    protocol: str = ""
    notes: str = ""
    config_hash: str = ""
    seed: int = 0
    git_commit: str = ""
    hardware: str = ""
    timestamp: str = ""

    def as_record(self) -> dict[str, str]:
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record["value"] = repr(float(self.value))
        record["seed"] = str(int(self.seed))
        return {k: str(v) for k, v in record.items()}


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs (released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (checkpoints and exported weights record it to detect damage)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_tree(directory: str | Path, files: bool = True) -> None:
    """Flush a folder's files (if `files`) and the folder itself to disk, so a rename that follows
    publishes complete data even after a power cut."""
    directory = Path(directory)
    if files:
        for path in directory.iterdir():
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp creates 0600; the result should read like any written file
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ResultsStore:
    """The append-only results table at `path` (a CSV file) with its config folder beside it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.configs_dir = self.path.parent / "configs"
        self._lock_path = self.path.parent / f".{self.path.name}.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def make_rows(
        self,
        *,
        run_id: str,
        config: Any,
        seed: int,
        method: str,
        stage: str,
        language: str,
        benchmark: str,
        metrics: dict[str, float],
        protocol: str = "",
        notes: str = "",
    ) -> list[ResultRow]:
        """Rows for several metrics of one (run, method, stage, language, benchmark), with provenance."""
        preset = getattr(config, "preset", "")
        common = dict(
            run_id=run_id, preset=preset, method=method, stage=stage, language=language,
            benchmark=benchmark, protocol=protocol, notes=notes, config_hash=config_hash(config),
            seed=seed, git_commit=provenance.git_commit(), hardware=provenance.hardware(),
            timestamp=provenance.utc_now(),
        )
        return [ResultRow(metric=name, value=float(value), **common) for name, value in metrics.items()]

    def save_config(self, config: Any) -> Path:
        """Keep the config once per hash next to the table, so every row's config can be looked up."""
        target = self.configs_dir / f"{config_hash(config)}.json"
        if not target.exists():
            payload = json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n"
            atomic_write_bytes(target, payload.encode())
        return target

    def save_per_prompt(self, run_id: str, language: str, benchmark: str, outcomes: dict[str, list[int]]) -> Path:
        """Keep a run's per-prompt outcomes (`Measurement.per_prompt`) in `per_prompt/<run_id>.json` next to
        the table, merged by language and benchmark."""
        target = self.path.parent / "per_prompt" / f"{run_id}.json"
        with self._locked():
            stored = json.loads(target.read_text()) if target.exists() else {}
            stored.setdefault(language, {})[benchmark] = {name: "".join("x" if v < 0 else str(v) for v in values)
                                                          for name, values in outcomes.items()}
            atomic_write_bytes(target, (json.dumps(stored, indent=1, sort_keys=True) + "\n").encode())
        return target

    def per_prompt(self, run_id: str) -> dict[str, dict[str, dict[str, list[float]]]]:
        """A run's stored per-prompt outcomes: language -> benchmark -> metric -> 1.0 / 0.0 / NaN per prompt."""
        target = self.path.parent / "per_prompt" / f"{run_id}.json"
        if not target.exists():
            return {}
        try:
            stored = json.loads(target.read_text())
        except json.JSONDecodeError as err:
            raise DataFormatError(target, f"not JSON ({err.msg})", line=err.lineno) from None
        decode = {"0": 0.0, "1": 1.0, "x": float("nan")}
        return {lang: {bench: {name: [decode[c] for c in text] for name, text in metrics.items()}
                       for bench, metrics in benches.items()} for lang, benches in stored.items()}

    def append(self, rows: Iterable[ResultRow]) -> int:
        """Append rows atomically; returns how many were written."""
        rows = list(rows)
        if not rows:
            return 0
        for row in rows:
            if not isinstance(row.value, (int, float)) or isinstance(row.value, bool):
                raise TypeError(f"result {row.metric!r}: value must be a number, got {row.value!r}")
        with self._locked():
            existing = self.path.read_bytes() if self.path.exists() else b""
            if existing:
                self._validate_text(existing.decode("utf-8"))  # never append onto a corrupt table
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
            if not existing:
                writer.writeheader()
            elif not existing.endswith(b"\n"):
                buffer.write("\n")
            for row in rows:
                writer.writerow(row.as_record())
            atomic_write_bytes(self.path, existing + buffer.getvalue().encode("utf-8"))
        log.info("appended %d result rows to %s", len(rows), self.path)
        return len(rows)

    def run_ids(self) -> set[str]:
        """The run ids that already have rows (a sweep uses this to skip finished cells)."""
        if not self.path.exists():
            return set()
        return set(self.read()["run_id"].unique())

    def _validate_text(self, text: str) -> list[dict[str, str]]:
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(self.path, "the file is empty (expected a header line)", line=1) from None
        if tuple(header) != COLUMNS:
            raise DataFormatError(
                self.path, f"header is {header}, expected the columns {list(COLUMNS)}", line=1
            )
        records = []
        for values in reader:
            if not values:
                continue
            if len(values) != len(COLUMNS):
                raise DataFormatError(
                    self.path, f"expected {len(COLUMNS)} fields, found {len(values)}: {values!r}", line=reader.line_num
                )
            record = dict(zip(COLUMNS, values))
            try:
                value = float(record["value"])
            except ValueError:
                raise DataFormatError(
                    self.path, f"value {record['value']!r} is not a number", line=reader.line_num
                ) from None
            if math.isinf(value):
                log.warning("%s line %d: infinite value for %s", self.path, reader.line_num, record["metric"])
            try:
                int(record["seed"])
            except ValueError:
                raise DataFormatError(
                    self.path, f"seed {record['seed']!r} is not an integer", line=reader.line_num
                ) from None
            records.append(record)
        return records

    def read(self) -> pd.DataFrame:
        """The whole table as a DataFrame (empty, with the right columns, if there is no file yet).

        A malformed row raises DataFormatError naming the file and line; nothing is silently dropped.
        """
        if not self.path.exists():
            return pd.DataFrame({c: pd.Series(dtype="float64" if c == "value" else "object") for c in COLUMNS})
        records = self._validate_text(self.path.read_text(encoding="utf-8"))
        frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
        frame["value"] = frame["value"].astype("float64")
        frame["seed"] = frame["seed"].astype("int64")
        return frame

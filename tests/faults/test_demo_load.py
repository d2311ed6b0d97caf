"""The demo under load and at its edges: concurrent requests from a second process are all answered or
cleanly turned away by the bounded queue, the app binds 127.0.0.1 unless told otherwise, and no request
can read a file outside what the app itself produced."""

import importlib.util
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("demo_load", REPO / "benchmarks" / "demo_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app(load, tmp_path_factory):
    process, url = load.start_app(steps=1, log_path=tmp_path_factory.mktemp("demo") / "app.log")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_concurrent_requests_are_answered_or_cleanly_rejected(load, app, ledger):
    report = load.run_load(app, clients=3, requests=4, steps=1)
    assert len(report.latencies) + len(report.rejected) == 12 and not report.errors, report.errors
    assert report.alive_after
    ledger.fault("demo: 3 clients x 4 concurrent generate requests", True,
                 how=f"{len(report.latencies)} answered, {len(report.rejected)} turned away by the queue, 0 errors; "
                     f"p90 {report.percentile(90):.1f} s (benchmarks/demo_load.py)")


@pytest.mark.slow
def test_a_full_queue_turns_requests_away_cleanly(load, tmp_path, ledger):
    process, url = load.start_app(steps=2, log_path=tmp_path / "app.log", extra=("--max-queue", "1"))
    try:
        report = load.run_load(url, clients=5, requests=2, steps=2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert report.rejected and not report.errors, report.errors
    assert len(report.latencies) + len(report.rejected) == 10 and report.alive_after
    ledger.fault("demo: 5 clients against a queue of 1", True,
                 how=f"{len(report.latencies)} answered, {len(report.rejected)} turned away ('queue is full'), "
                     "0 errors, app still serving")


def test_no_request_reads_a_file_outside_the_app(app, ledger):
    for path in ("gradio_api/file=/etc/passwd", "file=/etc/passwd", "gradio_api/file=../../../../etc/passwd",
                 f"gradio_api/file={REPO}/papermill_runs/toy/results.csv"):
        try:
            body = urllib.request.urlopen(app + path, timeout=10).read()
        except urllib.error.HTTPError as err:
            assert err.code in (403, 404), (path, err.code)
            continue
        assert b"root:" not in body and b"run_id" not in body, path
    ledger.bad_input("demo: a request naming a file path (/etc/passwd, the results table)", True, "403 / 404")


def test_the_app_binds_loopback_unless_told_otherwise(ledger):
    from demo.app import parse_arguments

    assert parse_arguments([]).host == "127.0.0.1" and not parse_arguments([]).share
    assert parse_arguments(["--host", "0.0.0.0"]).host == "0.0.0.0"
    ledger.bad_input("demo: launched without --host", True, "binds 127.0.0.1, no share link")

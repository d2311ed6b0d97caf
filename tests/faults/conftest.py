"""The fault suite's ledger: every test records the faults it injected and the bad inputs it tried, and
the suite prints the tally at the end (`make test` shows it; docs/reliability.md keeps a copy, refreshed by
`make fault-summary`, which sets XLCORE_FAULT_SUMMARY to the file to write)."""

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Ledger:
    faults: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)

    def fault(self, case: str, recovered: bool, rows_lost: int = 0, weights_lost: int = 0, how: str = "") -> None:
        """A fault injected into real work: was it recovered from, and was anything lost?"""
        self.faults.append({"case": case, "recovered": recovered, "rows_lost": rows_lost,
                            "weights_lost": weights_lost, "how": how})

    def bad_input(self, case: str, clear: bool, message: str = "") -> None:
        """A bad input: did it get a clear error (or a documented, visible correction)?"""
        message = re.sub(r"/tmp/\S*?pytest-\d+/[^/\s:]+/?", "", message)  # the test's own temporary folder
        self.inputs.append({"case": case, "clear": clear, "message": message[:160]})

    def summary(self) -> str:
        recovered = sum(f["recovered"] for f in self.faults)
        rows = sum(f["rows_lost"] for f in self.faults)
        weights = sum(f["weights_lost"] for f in self.faults)
        clear = sum(i["clear"] for i in self.inputs)
        lines = [f"Faults tried: {len(self.faults)}, recovered: {recovered}, results rows lost: {rows}, "
                 f"weights lost: {weights}. Bad inputs tried: {len(self.inputs)}, clear errors or visible "
                 f"corrections: {clear}.", "", "| fault | recovered | rows lost | weights lost | how |",
                 "| --- | --- | ---: | ---: | --- |"]
        lines += [f"| {f['case']} | {'yes' if f['recovered'] else 'NO'} | {f['rows_lost']} | {f['weights_lost']} | "
                  f"{f['how']} |" for f in self.faults]
        lines += ["", "| bad input | clear | what the user sees |", "| --- | --- | --- |"]
        lines += [f"| {i['case']} | {'yes' if i['clear'] else 'NO'} | {i['message'].replace('|', '/')} |"
                  for i in self.inputs]
        return "\n".join(lines)


LEDGER = Ledger()


@pytest.fixture
def ledger() -> Ledger:
    return LEDGER


@pytest.fixture(scope="session")
def jobs():
    """tests/faults/jobs.py as a module (the work the tests kill, and the trainers they resume)."""
    spec = importlib.util.spec_from_file_location("fault_jobs", Path(__file__).with_name("jobs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_terminal_summary(terminalreporter):
    if not LEDGER.faults and not LEDGER.inputs:
        return
    terminalreporter.section("fault suite")
    terminalreporter.write_line(LEDGER.summary())
    target = os.environ.get("XLCORE_FAULT_SUMMARY")
    if target:
        Path(target).write_text(LEDGER.summary() + "\n")

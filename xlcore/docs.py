"""The generated blocks of README.md and docs/: tables written between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` by the command that produces them, so the text never drifts from the artefacts.

    python -m xlcore docs            # rewrite every block from its source
    python -m xlcore docs --check    # exit 1 and name the blocks that are stale (a test runs this)

Each block's source is a function of committed artefacts: the results table (the methods table, the
claims audit), the method registry (one section per method, from each class and module), or a file a
benchmark or the fault suite writes (`make fault-summary`, `benchmarks/*.py --out`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "papermill_runs" / "toy" / "results.csv"


def _file(relative: str) -> Callable[[], str]:
    def read() -> str:
        return (REPO / relative).read_text().strip()

    read.__doc__ = f"the content of {relative}"
    return read


def _methods_table() -> str:
    from .report import methods_table

    return methods_table(RESULTS)


def _claims_audit() -> str:
    from .analysis import audit_claims, to_markdown

    return to_markdown(audit_claims(RESULTS).set_index("claim"))


def _method_sections() -> str:
    """One section per registered method, from its class (title, summary, diagram, deviations) and its
    module's docstring (what trains, the loss, the upstream source)."""
    import inspect

    from .methods._base import default_config, describe
    from .registry import METHODS
    from .report import ordered_methods

    sections, described = [], {}
    for name in ordered_methods(METHODS.names()):
        info = describe(name)
        module = inspect.getmodule(info.cls)
        lines = [f"### `{name}`: {info.title}", "", info.summary[:1].upper() + info.summary[1:] + ".", "",
                 info.prose, "", "```", info.diagram, "```", ""]
        path = module.__name__.replace(".", "/") + ".py"
        if module.__name__ in described:  # two methods of one module: its description once
            lines.append(f"Its code and the module's description: [`{path}`](../{path}) (under `{described[module.__name__]}` above).")
        else:
            described[module.__name__] = name
            lines += [f"From [`{path}`](../{path}):", "", inspect.getdoc(module)]
        label = info.cls.label_for(default_config(name))
        if label:
            lines += ["", f"Noted in the results table: {label}."]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _paper_parameters() -> str:
    from .methods._base import paper_parameter_table

    return paper_parameter_table()


@dataclass(frozen=True)
class Block:
    name: str
    files: tuple[str, ...]  # where it appears, relative to the repository
    source: Callable[[], str]
    command: str  # what refreshes the source itself, when it is an artefact


BLOCKS = (
    Block("methods-table", ("README.md", "docs/methods.md"), _methods_table, "make study"),
    Block("method-sections", ("docs/methods.md",), _method_sections, "(the method classes)"),
    Block("paper-parameters", ("docs/methods.md",), _paper_parameters, "(the method classes: Method.paper_counts)"),
    Block("claims-audit", ("docs/claims-audit.md",), _claims_audit, "make study"),
    Block("throughput-toy-cpu", ("docs/cost-and-performance.md",),
          _file("benchmarks/results/throughput_toy_cpu/throughput.md"),
          "benchmarks/throughput.py --preset toy --steps 5 --out benchmarks/results/throughput_toy_cpu"),
    Block("throughput-sd15-h200", ("docs/cost-and-performance.md",),
          _file("benchmarks/results/throughput_sd15_h200/throughput.md"), "bash benchmarks/gpu_check.sh OUT (a GPU)"),
    Block("data-loader", ("docs/data.md",), _file("benchmarks/results/data_loader_cpu/results.md"),
          "benchmarks/data_loader.py --out benchmarks/results/data_loader_cpu"),
    Block("fault-summary", ("docs/reliability.md",), _file("figures/tables/fault_summary.md"), "make fault-summary"),
)


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- {re.escape(name)}:begin -->\n(.*?)<!-- {re.escape(name)}:end -->", re.S)


def stale_blocks(write: bool = False) -> list[str]:
    """'file: block' for every block whose text differs from its source; with `write`, rewrite them."""
    stale = []
    for block in BLOCKS:
        body = block.source()
        for relative in block.files:
            path = REPO / relative
            text = path.read_text()
            match = _pattern(block.name).search(text)
            if match is None:
                raise ConfigError(f"{relative} has no block {block.name!r} (markers <!-- {block.name}:begin --> "
                                  f"and <!-- {block.name}:end -->)")
            if match.group(1).strip() != body:
                stale.append(f"{relative}: {block.name}")
                if write:
                    path.write_text(text[:match.start(1)] + body + "\n" + text[match.end(1):])
    return stale

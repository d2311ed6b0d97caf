"""Write the study's notebooks: `notebooks/methods/<method>.ipynb` for every registered method,
`evaluate.ipynb` and `analysis.ipynb` (the generator is `xlcore.notebooks`).

    .venv/bin/python notebooks/make_method_notebooks.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlcore.notebooks import write_notebooks  # noqa: E402

if __name__ == "__main__":
    for path in write_notebooks(Path(__file__).resolve().parent):
        print(path)

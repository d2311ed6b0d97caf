"""xlcore: cross-lingual adaptation of frozen text-to-image diffusion models, one harness.

Library only: notebooks, the CLI and the demo import it. See README.md for the two commands.
"""

__version__ = "0.1.0"

"""Caption grammars, one module per language, found by `GRAMMARS.discover()` (no central list).

Each module defines a `Grammar` subclass and registers it with `@GRAMMARS.register("<code>")`.
"""

from ._base import GRAMMARS, Grammar, get_grammar, supported_languages

__all__ = ["GRAMMARS", "Grammar", "get_grammar", "supported_languages"]

"""Cross-lingual adaptation methods, one module each.

Each module registers its method with `@METHODS.register("name")` (see `xlcore.registry`); modules
here are imported by `METHODS.discover()`, so nothing else needs editing when a method is added.
"""

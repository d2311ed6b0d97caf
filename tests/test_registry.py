"""The registry finds modules by import, with no central list; duplicates and unknown names are errors."""

import sys
import textwrap

import pytest

from xlcore.errors import UnknownMethodError, XlcoreError
from xlcore.registry import METHODS, Registry


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A throwaway package with two modules that register themselves, and one private module."""
    package = tmp_path / "fake_methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("alpha", "beta"):
        (package / f"{name}.py").write_text(textwrap.dedent(f"""
            from tests_registry_target import REGISTRY

            @REGISTRY.register("{name}")
            class Method:
                pass
        """))
    (package / "_helpers.py").write_text("raise RuntimeError('private modules are not imported')")
    target = tmp_path / "tests_registry_target.py"
    target.write_text(textwrap.dedent("""
        from xlcore.registry import Registry
        REGISTRY = Registry("method", "fake_methods", "xlcore.test-no-such-group")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in [m for m in sys.modules if m.startswith(("fake_methods", "tests_registry_target"))]:
        del sys.modules[module]


def test_modules_register_themselves_when_discovered(plugin_package):
    from tests_registry_target import REGISTRY

    assert REGISTRY.names() == ["alpha", "beta"]
    assert REGISTRY.get("alpha").name == "alpha"
    assert "beta" in REGISTRY and len(REGISTRY) == 2


def test_unknown_name_lists_the_registered_ones(plugin_package):
    from tests_registry_target import REGISTRY

    with pytest.raises(UnknownMethodError, match="unknown method 'gamma'; registered methods: alpha, beta"):
        REGISTRY.get("gamma")


def test_registering_two_objects_under_one_name_fails():
    registry = Registry("method", "xlcore.methods", "xlcore.test-no-such-group")

    @registry.register("same")
    class First:
        pass

    with pytest.raises(XlcoreError, match="registered twice"):
        @registry.register("same")
        class Second:
            pass


def test_every_module_of_the_methods_package_registers_what_it_defines():
    """Discovery imports every public module under xlcore/methods, and each one registers at least one
    method; every registered name points to a class defined in one of them (or is one of its variants)."""
    import pkgutil

    import xlcore.methods

    modules = {f"xlcore.methods.{m.name}" for m in pkgutil.iter_modules(xlcore.methods.__path__) if not m.name.startswith("_")}
    names = METHODS.names()
    owners = {name: METHODS.get(name) for name in names}
    assert {cls.__module__ for cls in owners.values()} == modules
    for name, cls in owners.items():
        assert name == cls.name or name in vars(cls).get("variants", {}), name


def test_variants_answer_to_their_own_names_and_unregister_with_their_method():
    registry = Registry("method", "xlcore.methods", "xlcore.test-no-such-group")

    @registry.register("base")
    class Base:
        variants = {"base_plus": object()}

    assert registry.get("base_plus") is Base and Base.name == "base"  # an alias does not rename the class
    with pytest.raises(XlcoreError, match="'base_plus' is registered twice"):
        @registry.register("other")
        class Other:
            variants = {"base_plus": object()}
    with pytest.raises(UnknownMethodError):  # not half-registered: the clash was found before anything changed
        registry.get("other")
    registry.unregister("base")
    for gone in ("base", "base_plus"):
        with pytest.raises(UnknownMethodError):
            registry.get(gone)

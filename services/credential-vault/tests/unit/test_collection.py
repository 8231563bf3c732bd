"""The vault's tests must collect alongside every other service's tests."""

from __future__ import annotations

import sys


def test_test_modules_are_named_by_their_path_not_a_shared_tests_package() -> None:
    """Every service has a ``tests/`` folder: with ``tests/__init__.py`` files this
    conftest would be ``tests.conftest``, the name other services' conftests take too,
    and collecting the whole repository stops at "Plugin already registered". Without
    them (``--import-mode=importlib``) the names are rooted at the repository path."""
    assert not __name__.startswith("tests.")
    ours = [name for name in sys.modules if name.endswith("conftest") and "vault" in name]
    assert ours, "the vault's conftest is loaded under a path-rooted name"
    assert all(".credential-vault.tests" in name for name in ours)

"""Lazy re-exports for package ``__init__`` modules (PEP 562), so ``import ketaplan`` stays cheap.

A package lists ``{public name: defining module}``; the module is imported the first time the name is
used, and the value is cached on the package. Heavy libraries (pandas, SciPy, pint) are then loaded
only by the commands and functions that need them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import each name from its module on first use."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

"""Lazy attributes for package ``__init__`` modules (PEP 562 ``__getattr__``).

``import distmi`` should not import torch, ray or pyarrow; the public names that live in such
modules are resolved on first access and then cached in the package namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, table: dict[str, str], namespace: dict[str, Any]
                 ) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` through ``table[name] = "module:attribute"``.

    Args:
        package: the package's name, for the error message.
        table: public name -> ``"module.path:attribute"``, or ``"module.path"`` for a module
            (a lazily imported subpackage alias such as ``distmi.nif`` or ``distmi.decompose``).
        namespace: the package's ``globals()``; resolved values are stored there, so later
            lookups do not come back here.
    """

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        value = getattr(module, attr) if attr else module
        namespace[name] = value
        return value

    return __getattr__

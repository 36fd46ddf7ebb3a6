"""The case registry: every module in this package that defines ``CASES``.

A module holds one family of cases (``echo``, later ``chain``, ``sidecar``,
``engine``) and exports ``CASES: tuple[Case[Any], ...]``. Nothing else needs
registering: `discover` imports each module of the package and collects them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from benchmarks.case import Case

__all__ = ["BASELINE", "discover"]

BASELINE = "echo"
"""The case every run measures first and every ratio divides by."""


def discover() -> dict[str, Case[Any]]:
    """All registered cases by name, the baseline first, then in module order.

    Raises `ValueError` on two cases with one name and `TypeError` on a
    ``CASES`` entry that is not a `Case`.
    """
    found: dict[str, Case[Any]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for case in getattr(module, "CASES", ()):
            if not isinstance(case, Case):
                raise TypeError(f"{module.__name__}.CASES holds {case!r}, not a Case")
            if case.name in found:
                raise ValueError(f"two cases are named {case.name!r}")
            found[case.name] = case
    if BASELINE not in found:
        raise ValueError(f"the baseline case {BASELINE!r} is not registered")
    return {BASELINE: found.pop(BASELINE), **found}

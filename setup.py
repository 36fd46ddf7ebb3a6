"""Maps graphgate's top-level folders onto the one `graphgate` namespace.

pyproject.toml cannot rename discovered packages, so the list is computed here:
`server/` becomes `graphgate.server`, `interceptors/` `graphgate.interceptors`,
`clients/` `graphgate.clients`, and the generated stubs under `gen/` keep their
own names (`graphgate.v1`, plus `buf.validate` generated from protovalidate's
embedded descriptor). See docs/decisions/001-packaging.md.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

_TOP_LEVEL = ("server", "interceptors", "clients")

packages: list[str] = []
package_dir: dict[str, str] = {}
for top in _TOP_LEVEL:
    for name in [top, *find_packages(include=[f"{top}.*"])]:
        packages.append(f"graphgate.{name}")
        package_dir[f"graphgate.{name}"] = name.replace(".", "/")
# Generated packages: every folder under gen/ with an __init__.py. The
# "graphgate" folder itself has none: it is the namespace shared with the above.
for init in sorted(Path("gen").rglob("__init__.py")):
    name = ".".join(init.parent.relative_to("gen").parts)
    packages.append(name)
    package_dir[name] = init.parent.as_posix()

setup(packages=packages, package_dir=package_dir)

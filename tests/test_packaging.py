"""What the code imports is what pyproject.toml declares, every declared package has its exact pin in constraints.txt,
and the app finds its package without patching sys.path."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Declared but never imported by our code, each for a stated reason.
NOT_IMPORTED = {"onnx": "torch.onnx.export needs it to write the detector's ONNX file ([export])"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, set[str]]:
    """Distribution names by group: "runtime" and each extra."""
    project = PYPROJECT["project"]
    groups = {"runtime": {_name(r) for r in project["dependencies"]}}
    groups.update({extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()})
    return groups


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in ``folder`` (functions included) that are neither stdlib nor ours,
    with the files that import them."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("stream_app", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(modules) -> dict[str, set[str]]:
    mapping = packages_distributions()
    return {module: {d.lower().replace("_", "-") for d in mapping.get(module, [module])} for module in modules}


def test_every_third_party_import_of_the_package_is_declared():
    groups = declared()
    allowed = groups["runtime"] | groups["ray"] | groups["export"]
    imports = third_party_imports(ROOT / "stream_app")
    undeclared = {m: sorted(files) for m, dists in distributions(imports).items() if not dists & allowed
                  for files in [imports[m]]}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    assert {"scipy", "pandas", "ray"} <= set(imports)  # the ones that once came only through constraints


def test_tests_import_only_declared_packages():
    groups = declared()
    allowed = set().union(*groups.values())
    imports = third_party_imports(ROOT / "tests")
    undeclared = {m for m, dists in distributions(imports).items() if not dists & allowed}
    assert not undeclared, f"the tests import undeclared packages: {undeclared}"


def test_every_declared_package_is_imported_and_pinned():
    groups = declared()
    imported = set().union(*distributions(third_party_imports(ROOT / "stream_app")).values(),
                           *distributions(third_party_imports(ROOT / "tests")).values())
    everything = set().union(*groups.values())
    unused = everything - imported - set(NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but imported nowhere: {unused}"
    assert "pillow" not in everything  # pinned once, never imported: it comes with streamlit and matplotlib
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    assert not everything - set(pins), f"declared without an exact pin in constraints.txt: {everything - set(pins)}"
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")


def test_app_entry_does_not_patch_sys_path():
    assert "sys.path" not in (ROOT / "stream_app" / "ui" / "app.py").read_text()
    assert PYPROJECT["project"]["scripts"]["stream-app"] == "stream_app.cli:main"

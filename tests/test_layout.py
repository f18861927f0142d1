"""The package's floors: every module imports only from its own floor or below, and a mode only from its own
package (plus the floors under the modes). The import graph tool checks circles; this checks direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stream_app.modes import get_mode, mode_names
from stream_app.modes.base import HOOKS, Hook

PACKAGE = Path(__file__).resolve().parents[1] / "stream_app"

# Lowest first. A module's floor is the first entry that is its name or a package above it.
FLOORS = [
    ["stream_app", "stream_app.errors", "stream_app.config", "stream_app.threads"],
    ["stream_app.frames", "stream_app.results", "stream_app.onnx_cpu", "stream_app.backbones", "stream_app.training"],
    ["stream_app.sources", "stream_app.annotators", "stream_app.sinks", "stream_app.synthetic"],
    ["stream_app.modes.base"],
    ["stream_app.modes.*"],  # one package per mode
    ["stream_app.modes"],  # the registry
    ["stream_app.pipeline", "stream_app.bench", "stream_app.batch", "stream_app.live"],
    ["stream_app.cli", "stream_app.__main__", "stream_app.ui"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> tuple[int, str]:
    """(floor number, the unit the module belongs to: a mode's package, or the module / package itself)."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["stream_app", "modes"] and parts[2] != "base":
        return FLOORS.index(["stream_app.modes.*"]), ".".join(parts[:3])
    for level, names in enumerate(FLOORS):
        for name in names:
            if module == name or (name != "stream_app" and module.startswith(name + ".")):
                return level, name
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in {Path(__file__).name}")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("stream_app")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("stream_app"):
            found.add(node.module)
    return found


def test_no_module_imports_upward_and_modes_import_only_themselves():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        my_floor, my_unit = floor(me)
        for target in imports(path):
            their_floor, their_unit = floor(target)
            if their_floor > my_floor:
                wrong.append(f"{me} imports {target} (floor {their_floor} > {my_floor})")
            elif FLOORS[my_floor] == ["stream_app.modes.*"] and their_floor == my_floor and their_unit != my_unit:
                wrong.append(f"{me} imports another mode's {target}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check above can fail: a mode module importing the registry or the CLI is reported."""
    assert floor("stream_app.modes.fingerspell.evaluate")[0] < floor("stream_app.cli")[0]
    assert floor("stream_app.modes.leukocyte.bench")[0] < floor("stream_app.modes")[0]
    assert floor("stream_app.modes.leukocyte.bench")[1] != floor("stream_app.modes.motion.spec")[1]
    bad = tmp_path / "bad.py"
    bad.write_text("from stream_app.cli import UsageError\nimport stream_app.modes\n")
    assert imports(bad) == {"stream_app.cli", "stream_app.modes"}


@pytest.mark.parametrize("name", mode_names())
def test_every_named_hook_resolves_to_a_function(name):
    spec = get_mode(name)
    assert spec.name == name
    for hook in HOOKS:
        value = getattr(spec, hook)
        if isinstance(value, Hook):
            assert callable(value.resolve()), f"{name}.{hook} -> {value.target}"


def test_a_hook_name_without_a_function_is_refused():
    with pytest.raises(ValueError, match="package.module:function"):
        Hook("stream_app.modes.motion.processor")

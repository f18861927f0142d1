"""A mode's settings dataclass described as controls (what widget, range, step, format), and the changes a page's
widgets make to a processor's settings. Not Streamlit: :func:`stream_app.ui.common.settings_controls` draws them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from stream_app.modes.base import setting_type


@dataclass(frozen=True)
class Control:
    """How to draw one setting: ``kind`` is ``select``, ``checkbox``, ``slider``, ``number`` or ``text``."""

    name: str
    label: str
    kind: str
    value_type: type
    default: Any
    help: str = ""
    min: Any = None
    max: Any = None
    step: Any = None
    choices: tuple = ()
    format: str | None = None

    def coerce(self, value: Any) -> Any:
        """The widget's value as the setting's type (sliders and number inputs may hand back int for float)."""
        if self.kind == "select" or value is None:
            return value
        if self.value_type is bool:
            return bool(value)
        return self.value_type(value)


def _decimals(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 0
    text = f"{float(value):.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def control_for(f: dataclasses.Field) -> Control | None:
    """A control for one settings field, or ``None`` when it has no simple widget (it then keeps its default)."""
    meta = dict(f.metadata or {})
    default = f.default if f.default is not dataclasses.MISSING else None
    vtype = setting_type(f)
    label = f.name.replace("_", " ").capitalize()
    help_text = meta.get("help") or ""
    choices = tuple(meta.get("choices") or ())
    if choices:
        return Control(f.name, label, "select", vtype or type(choices[0]), default if default in choices else choices[0],
                       help_text, choices=choices)
    if vtype is bool:
        return Control(f.name, label, "checkbox", bool, bool(default), help_text)
    if vtype in (int, float):
        lo, hi, step = meta.get("min"), meta.get("max"), meta.get("step")
        cast = vtype
        lo = None if lo is None else cast(lo)
        hi = None if hi is None else cast(hi)
        step = cast(step) if step is not None else (1 if vtype is int else None)
        value = cast(default if default is not None else (lo if lo is not None else 0))
        fmt = None
        if vtype is float:
            fmt = f"%.{max(1, _decimals(step), _decimals(lo), _decimals(value))}f"
        kind = "slider" if lo is not None and hi is not None else "number"
        if lo is not None:
            value = max(lo, value)
        if hi is not None:
            value = min(hi, value)
        return Control(f.name, label, kind, vtype, value, help_text, lo, hi, step, format=fmt)
    if vtype is str:
        return Control(f.name, label, "text", str, default or "", help_text)
    return None


def controls_for(spec: Any) -> list[Control]:
    """Controls for every field of ``spec.settings_cls`` that has a simple widget."""
    return [c for c in (control_for(f) for f in spec.settings_fields()) if c is not None]


def changed_settings(settings: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from the settings dataclass instance (unknown names ignored)."""
    out = {}
    for name, value in values.items():
        if not hasattr(settings, name):
            continue
        current = getattr(settings, name)
        if isinstance(current, float) and isinstance(value, (int, float)):
            if math.isclose(current, float(value), rel_tol=1e-9, abs_tol=1e-12):
                continue
        elif current == value:
            continue
        out[name] = value
    return out

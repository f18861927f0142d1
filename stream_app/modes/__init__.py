"""The modes, one package each (``stream_app/modes/<mode>/``), and the registry that finds them by name.

A mode's package holds its processor, its spec (``SPEC = ModeSpec(...)``), its recognition logic, model loading,
training and evaluation. The registry imports a mode only when it is asked for, so ``--help`` does not load torch.
To add a mode, add its package and one line to ``MODES``; the UI, the CLI and the tests pick it up from here.
"""

from __future__ import annotations

import importlib
import importlib.util

from stream_app.modes.base import ModeSpec, Processor, setting

MODES = {
    "fingerspell": "stream_app.modes.fingerspell.spec",
    "leukocyte": "stream_app.modes.leukocyte.spec",
    "classify": "stream_app.modes.classify.spec",
    "motion": "stream_app.modes.motion.spec",
}


class UnknownModeError(KeyError):
    def __str__(self) -> str:
        return f"unknown mode {self.args[0]!r}; available: {', '.join(mode_names())}"


def mode_names() -> list[str]:
    """Modes whose module is present (a mode under construction is simply absent)."""
    return [name for name, module in MODES.items() if importlib.util.find_spec(module) is not None]


def get_mode(name: str) -> ModeSpec:
    if name not in mode_names():
        raise UnknownModeError(name)
    return importlib.import_module(MODES[name]).SPEC


def create_processor(name: str, **settings) -> Processor:
    return get_mode(name).create(**settings)


__all__ = ["ModeSpec", "Processor", "UnknownModeError", "create_processor", "get_mode", "mode_names", "setting"]

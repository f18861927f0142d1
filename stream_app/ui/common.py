"""Streamlit pieces the pages share: mode picker, settings controls drawn from a mode's settings dataclass, the
mode notice, the once-per-process warm-up and the per-session temporary folder. The controls' description lives in
:mod:`stream_app.ui.controls` (testable without a browser)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from stream_app.modes import ModeSpec, get_mode, mode_names
from stream_app.ui.controls import Control, controls_for

DEFAULT_MODE = "fingerspell"


def pick_mode(page: str) -> ModeSpec | None:
    """Mode selector in the sidebar (every mode present in the registry); ``None`` when no mode can load."""
    names = mode_names()
    if not names:
        st.error("No processing mode is installed.")
        return None
    wanted = st.query_params.get("mode", DEFAULT_MODE)  # ?mode=NAME preselects a mode (links, the browser test)
    default = names.index(wanted) if wanted in names else (names.index(DEFAULT_MODE) if DEFAULT_MODE in names else 0)

    def title(name: str) -> str:
        try:
            return f"{get_mode(name).title} ({name})"
        except Exception:  # noqa: BLE001 - a mode that cannot import is still listed, and reported on selection
            return name

    name = st.sidebar.selectbox("Mode", names, index=default, format_func=title, key=f"{page}-mode")
    try:
        spec = get_mode(name)
    except Exception as exc:  # noqa: BLE001 - a broken mode must not take the app down
        st.error(f"Mode {name!r} could not be loaded: {type(exc).__name__}: {exc}")
        return None
    st.sidebar.caption(spec.description)
    return spec


def show_notice(spec: ModeSpec) -> None:
    if spec.notice:
        st.info(spec.notice)


@st.cache_resource(show_spinner=False)
def _warm_up(name: str) -> bool:
    spec = get_mode(name)
    if spec.warm_up is not None:
        spec.warm_up()
    return True


def warm_up(spec: ModeSpec) -> bool:
    """Load the mode's shared models once per process (``st.cache_resource``); shows an error when that fails."""
    try:
        with st.spinner(f"Loading the {spec.title} models (once per server)..."):
            return _warm_up(spec.name)
    except Exception as exc:  # noqa: BLE001
        st.error(f"The {spec.title} models could not be loaded: {type(exc).__name__}: {exc}")
        return False


def _widget(control: Control, key: str) -> Any:
    area = st.sidebar
    if control.kind == "select":
        choices = list(control.choices)
        return area.selectbox(control.label, choices, index=choices.index(control.default), help=control.help,
                              key=key)
    if control.kind == "checkbox":
        return area.checkbox(control.label, value=control.default, help=control.help, key=key)
    if control.kind == "slider":
        return area.slider(control.label, min_value=control.min, max_value=control.max, value=control.default,
                           step=control.step, format=control.format, help=control.help, key=key)
    if control.kind == "number":
        return area.number_input(control.label, min_value=control.min, max_value=control.max, value=control.default,
                                 step=control.step, format=control.format, help=control.help, key=key)
    return area.text_input(control.label, value=control.default, help=control.help, key=key)


def settings_controls(spec: ModeSpec, page: str) -> dict[str, Any]:
    """Sidebar widgets for the mode's settings; returns ``{name: value}`` typed like the dataclass fields."""
    controls = controls_for(spec)
    if not controls:
        return {}
    st.sidebar.subheader("Settings")
    return {c.name: c.coerce(_widget(c, f"{page}-{spec.name}-{c.name}")) for c in controls}


def create_processor(spec: ModeSpec, live: bool, settings: dict[str, Any]):
    """``spec.create``; an error (bad setting, missing model) becomes a message and ``None``."""
    try:
        return spec.create(live=live, **settings)
    except Exception as exc:  # noqa: BLE001
        st.error(f"Could not start {spec.title}: {type(exc).__name__}: {exc}")
        return None


def session_tmp(name: str) -> Path:
    """A temporary folder for this browser session (uploads, outputs). It is a ``TemporaryDirectory`` held in the
    session's state, so it is deleted when Streamlit drops the session (or the server exits)."""
    dirs = st.session_state.setdefault("_tmp_dirs", {})
    if name not in dirs or not Path(dirs[name].name).is_dir():
        dirs[name] = tempfile.TemporaryDirectory(prefix=f"stream_app_{name}_")
    return Path(dirs[name].name)

"""Images page: one or more still images through the chosen mode (each on its own, state reset between them).

Shows the annotated image and the result (class probabilities as a bar chart when the mode ranks classes, boxes as a
table), and offers the annotated PNG, the result as JSON and, when the mode has one, its report ("Save result").
Images are read by :func:`stream_app.sources.read_image` (8/16-bit, greyscale, RGBA); unreadable ones get a message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import streamlit as st

from stream_app.errors import InputError
from stream_app.pipeline import process_image
from stream_app.sinks import encode_png
from stream_app.sources import read_image
from stream_app.ui import common
from stream_app.ui.panel import display_width, result_lines, timings_line

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"]
CACHE_SIZE = 40


def _analyse(data: bytes, name: str, spec, processor) -> dict:
    """Read, process and annotate one image; the outcome (or the error message) as a dict for the cache."""
    try:
        image = read_image(data)
    except InputError as exc:
        message = str(exc)
        message = message[len("image: "):] if message.startswith("image: ") else message
        return {"error": f"{name}: {message}"}
    processor.reset()
    result, annotated = process_image(image, processor)
    outcome = {"result": result, "annotated": annotated, "png": encode_png(annotated), "report": None,
               "size": (image.shape[1], image.shape[0])}
    if spec.report is not None:
        try:
            outcome["report"] = spec.report(image, result)
        except Exception as exc:  # noqa: BLE001
            outcome["report_error"] = f"{type(exc).__name__}: {exc}"
    return outcome


def show(name: str, outcome: dict, spec, index: int) -> None:
    st.subheader(name)
    if "error" in outcome:
        st.error(outcome["error"])
        return
    result = outcome["result"]
    left, right = st.columns([3, 2])
    with left:
        height, width = outcome["annotated"].shape[:2]
        st.image(outcome["annotated"], caption=f"{outcome['size'][0]}x{outcome['size'][1]}, {spec.title}",
                 width=display_width(width, height) if height > width else "stretch")
    with right:
        st.code("\n".join(result_lines(result)), language=None, wrap_lines=True)
        if result.top_k:
            import pandas as pd

            frame = pd.DataFrame({"class": [c for c, _ in result.top_k], "probability": [p for _, p in result.top_k]})
            st.bar_chart(frame, x="class", y="probability", height=220, sort=False)
        if result.detections:
            import pandas as pd

            st.dataframe(pd.DataFrame([{"label": d.label, "score": round(d.score, 3),
                                        **dict(zip(("x1", "y1", "x2", "y2"), (round(v) for v in d.box)))}
                                       for d in result.detections]), hide_index=True)
        timings = timings_line(result)
        if timings:
            st.caption(timings)
        stem = Path(name).stem
        st.download_button("Annotated PNG", data=outcome["png"], file_name=f"{stem}_{spec.name}.png",
                           mime="image/png", on_click="ignore", key=f"images-png-{index}")
        st.download_button("Result (JSON)", data=json.dumps(result.to_json(0, 0.0), indent=1),
                           file_name=f"{stem}_{spec.name}.json", mime="application/json", on_click="ignore",
                           key=f"images-json-{index}")
        if outcome.get("report") is not None:
            st.download_button("Save result", data=outcome["report"], file_name=f"{stem}_{spec.name}_report.png",
                               mime="image/png", on_click="ignore", key=f"images-report-{index}")
        elif outcome.get("report_error"):
            st.warning(f"The report could not be made: {outcome['report_error']}")


def render() -> None:
    st.title("Images")
    spec = common.pick_mode("images")
    if spec is None:
        return
    settings = common.settings_controls(spec, "images")
    common.show_notice(spec)
    uploads = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="images-upload",
                               help="png, jpg, bmp, tif or webp; 8 or 16 bit, colour or greyscale.")
    if not uploads:
        st.info("Upload one or more images.")
        return
    if not common.warm_up(spec):
        return
    cache: dict = st.session_state.setdefault("images-cache", {})
    processor = None
    for index, upload in enumerate(uploads):
        data = upload.getvalue()
        key = (hashlib.sha1(data).hexdigest(), spec.name, repr(sorted(settings.items())))
        if key not in cache:
            if processor is None:
                processor = common.create_processor(spec, live=False, settings=settings)
                if processor is None:
                    return
            with st.spinner(f"Processing {upload.name}..."):
                cache[key] = _analyse(data, upload.name, spec, processor)
            while len(cache) > CACHE_SIZE:
                cache.pop(next(iter(cache)))
        st.divider()
        show(upload.name, cache[key], spec, index)
    if processor is not None:
        processor.close()

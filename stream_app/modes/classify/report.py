"""The downloadable PNG report of one classified image: the image, a probability bar chart, the model name and
version, the date, and the "not a diagnostic device" notice. Drawn with matplotlib's Agg backend (no display)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np

from stream_app.frames import to_rgb8
from stream_app.results import FrameResult

NOTICE = "Research demo, not a diagnostic device: do not use these probabilities for diagnosis or treatment."


def render_report(image: np.ndarray, result: FrameResult, when: dt.datetime | None = None) -> bytes:
    """PNG bytes. ``image`` is the classified image (any layout :func:`~stream_app.frames.to_rgb8` takes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rgb = image if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 else to_rgb8(image)
    when = when or dt.datetime.now(dt.timezone.utc)
    name = getattr(result.extras, "model", "unknown model")
    version = getattr(result.extras, "version", "unknown version")
    ranked = list(result.top_k)
    fig = plt.figure(figsize=(10, 5.6), dpi=100)
    grid = fig.add_gridspec(1, 2, width_ratios=(1, 1.15), left=0.04, right=0.97, top=0.80, bottom=0.16, wspace=0.3)
    ax_img = fig.add_subplot(grid[0])
    ax_img.imshow(rgb)
    ax_img.set_axis_off()
    ax_img.set_title(f"{rgb.shape[1]}x{rgb.shape[0]} px", fontsize=9)
    ax_bar = fig.add_subplot(grid[1])
    if ranked:
        labels = [label for label, _ in ranked][::-1]
        probs = [float(p) for _, p in ranked][::-1]
        colours = ["#d95f02" if i == len(probs) - 1 else "#7570b3" for i in range(len(probs))]
        bars = ax_bar.barh(labels, probs, color=colours)
        for bar, p in zip(bars, probs):
            ax_bar.text(min(p + 0.02, 0.86), bar.get_y() + bar.get_height() / 2, f"{100 * p:.1f} %", va="center",
                        fontsize=10)
        ax_bar.set_xlim(0, 1)
        ax_bar.set_xlabel("probability")
        ax_bar.set_title("class probabilities", fontsize=11)
        headline = f"Most probable: {ranked[0][0]} ({100 * float(ranked[0][1]):.1f} %)"
    else:
        ax_bar.set_axis_off()
        ax_bar.text(0.5, 0.5, result.error or "no prediction", ha="center", va="center", wrap=True)
        headline = "No prediction"
    fig.suptitle(f"Image classification report - {headline}", fontsize=13, y=0.97)
    fig.text(0.5, 0.885, f"Model: {name}   version: {version}   date: {when.strftime('%Y-%m-%d %H:%M UTC')}",
             ha="center", fontsize=10)
    fig.text(0.5, 0.04, NOTICE, ha="center", fontsize=9, color="#b00020")
    if result.warning:
        fig.text(0.5, 0.085, f"Note: {result.warning}", ha="center", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()

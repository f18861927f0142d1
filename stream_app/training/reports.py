"""What a training run leaves besides its weights: the model card, the command it records, the weight sizes, and
the confusion-matrix and ROC plots (scikit-learn's ``ConfusionMatrixDisplay`` and ``RocCurveDisplay`` on matplotlib's
Agg backend, no display needed)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def command_line(command: str, args: argparse.Namespace, names: Iterable[str]) -> str:
    """``python -m stream_app <command>`` with the options ``names`` as ``args`` holds them: flags set to True
    appear bare, None and False are left out, values are shell-quoted."""
    parts = [f"python -m stream_app {command}"]
    for name in names:
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        flag = f"--{name.replace('_', '-')}"
        parts.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def file_sizes_mb(folder: str | Path, suffixes: Sequence[str] = (".pt", ".onnx")) -> dict[str, float]:
    """Sizes of the weight files in ``folder``, in MB, by file name."""
    return {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(Path(folder).glob("*.*")) if p.suffix in suffixes}


def write_model_card(path: str | Path, text: str, keep_below: str | None = None, default_tail: str = "") -> Path:
    """Write ``MODEL_CARD.md``. With ``keep_below`` (a marker line ending ``text``), what an earlier card holds
    below the marker (e.g. held-out metrics added from ``evaluate`` runs) is kept, else ``default_tail`` follows."""
    path = Path(path)
    tail = ""
    if keep_below is not None:
        old = path.read_text() if path.is_file() else ""
        tail = old.split(keep_below, 1)[1] if keep_below in old else default_tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + tail)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_confusion_png(confusion: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """The confusion matrix (rows true, columns predicted) as a PNG; the figure grows with the number of labels."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = 2.5 + (0.6 if len(labels) <= 10 else 0.35) * len(labels)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ConfusionMatrixDisplay(np.asarray(confusion), display_labels=list(labels)).plot(
        ax=ax, colorbar=False, cmap="Blues", text_kw={"fontsize": 7} if len(labels) > 10 else None)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def save_roc_png(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: str | Path,
                 title: str = "") -> Path:
    """ROC curves: the positive class for two classes, each class against the rest for more."""
    from sklearn.metrics import RocCurveDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    positives = [1] if len(classes) == 2 else range(len(classes))
    for i in positives:
        truth = (np.asarray(labels) == i).astype(int)
        if truth.min() == truth.max():
            continue
        RocCurveDisplay.from_predictions(truth, probs[:, i], name=f"{classes[i]} vs rest", ax=ax)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(f"ROC\n{title}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)

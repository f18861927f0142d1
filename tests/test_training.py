"""The training kit the three pipelines share: budget, best checkpoint, logging, command line, model card, plots."""

import argparse
import logging

import numpy as np
import pytest
import torch

from stream_app.training.loop import BestCheckpoint, TimeBudget, seed_everything, training_logger
from stream_app.training.reports import (command_line, save_confusion_png, save_roc_png, write_model_card)


def test_time_budget_counts_from_creation_on_its_clock():
    now = [100.0]
    budget = TimeBudget(2.0, clock=lambda: now[0])
    assert not budget.expired() and budget.fits(120.0) and not budget.fits(121.0)
    now[0] += 90.0
    assert budget.fraction() == pytest.approx(0.75) and budget.left_s() == pytest.approx(30.0)
    now[0] += 40.0
    assert budget.expired() and not budget.expired(grace_s=60) and budget.left_s() == 0.0 and budget.fraction() == 1.0


def test_best_checkpoint_keeps_the_best_state_and_restores_it():
    model = torch.nn.Linear(2, 1)
    best = BestCheckpoint()
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert best.consider(0.5, model, epoch=1)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not best.consider(0.4, model, epoch=2) and best.info == {"epoch": 1}
    assert best.restore(model) and model.weight[0, 0].item() == 1.0
    assert not BestCheckpoint().restore(model)


def test_best_checkpoint_ties_deltas_lower_and_tuples():
    ties = BestCheckpoint(ties_improve=True, start=-1.0)
    assert ties.consider(0.5) and ties.consider(0.5) and not ties.consider(0.4)
    loss = BestCheckpoint(higher_is_better=False, min_delta=1e-4)
    assert loss.consider(1.0) and not loss.consider(0.99995) and loss.consider(0.9)
    key = BestCheckpoint(keep_state=False)
    assert key.consider((0.9, 0.5, 0.8)) and key.consider((0.9, 0.6, 0.1)) and not key.consider((0.9, 0.6, 0.1))
    assert key.state is None


def test_training_logger_writes_to_stderr_and_leaves_the_root_logger_alone(capsys):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    log = training_logger("test")
    assert training_logger("test") is log and len(log.handlers) == 1  # configured once
    log.info("epoch %d done", 3)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.rstrip().endswith("] epoch 3 done")
    assert root.handlers == handlers and root.level == level


def test_seeding_repeats_a_run():
    seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_command_line_and_model_card_keep_what_evaluate_added(tmp_path):
    args = argparse.Namespace(images="my data", epochs=3, hflip=True, no_pretrained=False, classes=None)
    assert command_line("train classify", args, ["images", "epochs", "hflip", "no_pretrained", "classes"]) == (
        "python -m stream_app train classify --images 'my data' --epochs 3 --hflip")
    card, marker = tmp_path / "MODEL_CARD.md", "<!-- below -->"
    write_model_card(card, f"# v1\n{marker}", keep_below=marker, default_tail="\nrun evaluate\n")
    assert card.read_text() == f"# v1\n{marker}\nrun evaluate\n"
    card.write_text(card.read_text().replace("run evaluate", "accuracy 0.93"))
    write_model_card(card, f"# v2\n{marker}", keep_below=marker)
    assert card.read_text() == f"# v2\n{marker}\naccuracy 0.93\n"


def test_plots_are_written_through_scikit_learn_displays(tmp_path):
    confusion = save_confusion_png(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "c.png", "title")
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    roc = save_roc_png(labels, probs, ["a", "b", "c"], tmp_path / "r.png", "title")
    for path in (confusion, roc):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000

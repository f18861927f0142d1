"""Classify mode: a MobileNetV2 transfer-learned per data set gives whole-image class probabilities.

Layout: :mod:`.processor` (``ClassifyProcessor``, its settings), :mod:`.spec` (``SPEC``), :mod:`.network` (build, save, load once per process, preprocess, predict), :mod:`.data` (MedMNIST ``.npz``
files and folders with one sub-folder per class), :mod:`.train` (frozen backbone, then fine-tuning, early stopping,
model card), :mod:`.evaluate` (scikit-learn metrics and plots), :mod:`.report` (the PNG report of one image).

A model lives in a folder (by default ``models/classify/<name>/``) holding ``weights.pt`` (float16 state_dict),
``labels.json`` (classes, input size, colour, normalisation, version) and ``MODEL_CARD.md``.
"""

"""The small kit the three training pipelines share (fingerspelling, leukocyte detector, image classifier).

- :mod:`.loop`: :func:`seed_everything`, :class:`TimeBudget` (``--max-minutes``), :class:`BestCheckpoint` (keep the
  best model seen on validation), :func:`training_logger` (progress on stderr, without touching the root logger, so
  stdout keeps the JSON a command prints and the CLI's own logging stays as it is).
- :mod:`.reports`: the model card writer, the command line a card records, weight sizes, and the confusion-matrix
  and ROC plots through scikit-learn's displays.

Floor: below the modes (it imports no mode); torch and matplotlib are imported only where used.
"""

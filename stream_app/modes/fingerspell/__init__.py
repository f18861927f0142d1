"""Fingerspelling mode: hand finding (MediaPipe Tasks), hand-crop and landmark classifiers, spelling logic, training
and evaluation.

- :mod:`.processor`: ``FingerspellProcessor`` and its settings; :mod:`.spec`: how the mode plugs in (``SPEC``).
- :mod:`.recognition`: choosing the signing hand and reading its letter (stills, streams, ``evaluate``).

- :mod:`.hands`: ``HandFinder`` (MediaPipe ``HandLandmarker``; VIDEO mode for streams, IMAGE mode with retries for
  stills), the square crop, landmark features, left hands mirrored to right ones.
- :mod:`.models`: the landmark MLP, the Spatial Transformer + MobileNetV2 crop classifier, their fusion, loading.
- :mod:`.speller`: stable-time spelling, double letters, space/delete/clear; :mod:`.motion`: J and Z from the
  fingertip motion.
- :mod:`.data`: the hand-finder cache of the shared data sets (outside the repository).
- :mod:`.train`, :mod:`.evaluate`: the ``train fingerspell`` / ``evaluate fingerspell`` commands; :mod:`.bench`:
  the frames ``bench`` uses.
"""

LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

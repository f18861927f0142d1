"""Leukocyte mode (white blood cells): preprocessing, data, detector, training, evaluation, baseline, tracking.

:mod:`.processor` (``LeukocyteProcessor``, its settings) uses them; :mod:`.spec` plugs the mode in (``SPEC``).
"""

"""Leukocyte (white blood cell) detection: preprocessing, data, detector, training, evaluation, baseline, tracking.

The live processor that uses these is :mod:`stream_app.modes.leukocyte.processor`.
"""

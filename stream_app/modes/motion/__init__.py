"""Motion mode: boxes around whatever moves (OpenCV background subtraction); no model. :mod:`.processor`."""

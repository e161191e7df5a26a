"""Scripts that draw every figure from saved results (``python -m figures.plot RESULTS_DIR``),
and the reference PNGs the README shows."""

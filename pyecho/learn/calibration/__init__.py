"""Calibrated uncertainty and trust: conformal intervals and sets, temperature scaling, the
out-of-domain guard."""

"""Probability calibration, fitted on a later validation window than training.

Send planning multiplies p(purchase) by order value and commission rate and compares the
result with a message's cost, so p must mean what it says. Platt scaling (a logistic fit on the
booster's raw margin) has two parameters and cannot overfit a validation window of a few
thousand customers the way a free-form fit can; its parameters are stored with the model.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_platt(margin: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(a, b) maximising the likelihood of y under sigmoid(a * margin + b), by Newton's method
    with Platt's target smoothing (so a separable window does not drive a to infinity)."""
    y = y.astype(np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = margin.astype(np.float64)
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = _sigmoid(a * x + b)
        w = np.maximum(p * (1 - p), 1e-12)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + np.eye(2) * 1e-9
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(a), float(b)


def apply_platt(margin: np.ndarray, a: float, b: float) -> np.ndarray:
    return _sigmoid(a * margin.astype(np.float64) + b)

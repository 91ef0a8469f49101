"""Query streams for the monitor proofs: benign clients replaying test data and an extraction attacker.

The attacker follows the Jacobian-based dataset augmentation of Papernot et al., "Practical
Black-Box Attacks against Machine Learning", AsiaCCS 2017, arXiv:1602.02697: start from a few
seed images, label them through the API, fit a substitute, and step every known point by
``lam * sign`` of the substitute's gradient of its label's probability; repeat. The substitute is a
logistic regression, whose gradient has a closed form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from sklearn.linear_model import LogisticRegression

from aisec.gateway.monitors import Monitor

Oracle = Callable[[np.ndarray], np.ndarray]  # (n, 64) -> (n, classes) probabilities


def fit_digits_model(x_train: np.ndarray, y_train: np.ndarray) -> LogisticRegression:
    """The model behind the gateway in the proofs: logistic regression on flattened 8x8 digits."""
    return LogisticRegression(max_iter=2000, random_state=0).fit(x_train.reshape(len(x_train), -1), y_train)


def benign_stream(x_test: np.ndarray, n: int, seed: int) -> np.ndarray:
    """One benign client: ``n`` distinct test images in random order."""
    rng = np.random.default_rng(seed)
    return x_test[rng.choice(len(x_test), n, replace=False)].reshape(n, -1)


def jacobian_stream(
    oracle: Oracle, x_seed_pool: np.ndarray, n: int, seed: int, *, n_seeds: int = 10, lam: float = 0.1
) -> np.ndarray:
    """The first ``n`` queries of a Jacobian-augmentation extraction attacker (Papernot et al. 2017).

    ``oracle`` is called on each new batch of points exactly once, in the order they are returned.
    """
    rng = np.random.default_rng(seed)
    known = x_seed_pool[rng.choice(len(x_seed_pool), n_seeds, replace=False)].reshape(n_seeds, -1)
    labels = oracle(known).argmax(axis=1)  # every point is sent once; its label is kept
    while len(known) < n:
        if len(np.unique(labels)) > 1:
            sub = LogisticRegression(max_iter=500).fit(known, labels)
            p = sub.predict_proba(known)
            col = np.searchsorted(sub.classes_, labels)
            w = sub.coef_ if sub.coef_.shape[0] > 1 else np.vstack([-sub.coef_, sub.coef_])
            grad = p[np.arange(len(known)), col, None] * (w[col] - p @ w)
        else:
            grad = rng.standard_normal(known.shape)
        new = np.clip(known + lam * np.sign(grad), 0.0, 1.0)[: n - len(known)]
        labels = np.concatenate([labels, oracle(new).argmax(axis=1)])
        known = np.vstack([known, new])
    return known


def first_alert(monitor: Monitor, key_id: str, stream: Iterable[np.ndarray], oracle: Oracle) -> int | None:
    """Send a stream one query per request; the 1-based index of the first query that raised an alert."""
    for i, q in enumerate(stream):
        q = q[None]
        if monitor.observe(key_id, q, oracle(q), 0.001):
            return i + 1
    return None

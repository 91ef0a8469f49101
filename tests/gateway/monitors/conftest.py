"""One BLAS thread for the monitor tests: on a busy 2-core machine, spinning BLAS threads make the
small matrix products here (and scikit-learn's fits) a hundred times slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield

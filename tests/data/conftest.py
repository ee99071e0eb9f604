"""Fixtures for the data tests: a store URL per backend (SQLite file, fresh PostgreSQL database)."""

from __future__ import annotations

import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    """A URL to an empty candle store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/candles.sqlite"
    return request.getfixturevalue("postgres_url")

"""The journal tests' fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a journal test keeps its journal: a SQLite file, or a fresh PostgreSQL database
    on the session's throwaway cluster (skipped when PostgreSQL is not installed)."""
    if request.param == "sqlite":
        return tmp_path / "j.db"
    return request.getfixturevalue("pg_url")

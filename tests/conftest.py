"""Shared test set-up: the hypothesis profile (no deadlines) and a throwaway PostgreSQL cluster (one per test session / xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests._postgres import PgCluster, find_bindir, reap_stale_clusters

# Property tests assert behaviour, never speed: no per-example deadline and no "too slow"
# health check (both fail on a busy 2-core machine; test_unit_bounds did at load 8).
settings.register_profile("hedgekit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hedgekit")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server on 127.0.0.1, started for this session and deleted after it.

    Skips when the server binaries are not installed (`make test` installs Debian's
    postgresql) or the psycopg driver is missing (it comes with the dev extras)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the psycopg driver is not installed: `make test` installs the dev extras "
                    "(or: pip install 'psycopg[binary]')")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: `make postgres` "
                    "(or apt-get install postgresql) installs them; HEDGEKIT_PG_BIN names their folder")
    reap_stale_clusters(bindir)
    cluster = PgCluster(bindir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The SQLAlchemy URL of a fresh, empty database on the session's cluster."""
    return pg_cluster.url(pg_cluster.new_database())

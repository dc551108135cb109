"""A journal on a disk that really fills up (a small tmpfs mounted by the test, filled by a
filler file): the run stops with a clear error, and after space is freed the same command
resumes and ends with exactly the fills and positions of a run that never failed (issue 15).

Mounting needs root (CAP_SYS_ADMIN): elsewhere the test is skipped, saying so; the injected
failures of test_journal_failures.py cover every write kind there."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from hedgekit.config import load_config
from hedgekit.store.journal import Journal, JournalError
from tests.engine.test_live import busy_config, paper, slice_csv
from tests.hardening.test_journal_failures import _journaled

FS_BYTES = 8 * 1024 * 1024


@contextlib.contextmanager
def small_disk(where: Path):
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'}): "
                    "the real disk-full case needs root; injected failures are tested elsewhere")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``disk``."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def test_a_journal_on_a_full_disk_stops_cleanly_and_resumes_with_every_fill(tmp_path):
    cfg = load_config(busy_config(tmp_path))
    data = slice_csv(tmp_path, 1)

    clean_db = tmp_path / "clean.db"
    with Journal.open(clean_db) as j:
        reference = _journaled(clean_db, paper(cfg, j, data).run_id)
    total = sum(len(f) for f in reference[0].values())
    assert total > 50

    with small_disk(tmp_path / "disk") as disk:
        db = disk / "journal.db"
        Journal.open(db).close()  # the schema fits; the run's writes will not all fit
        # SQLite's write-ahead log grows to ~1,000 pages between checkpoints: 1 MB free fills
        # up in the middle of this run (seen: after 8 of its 95 fills).
        filler = _fill(disk, leave=1024 * 1024)
        with Journal.open(db) as j, pytest.raises(JournalError) as err:
            paper(cfg, j, data)
        message = str(err.value)
        assert "full" in message and str(db.name) in message, message
        partial = _journaled(db, 1)
        written = sum(len(f) for f in partial[0].values())
        assert written < total, "the disk filled up before the end of the run"

        filler.unlink()  # the user frees space and runs the same command again
        with Journal.open(db) as j:
            run_id = paper(cfg, j, data).run_id
            assert len(j.runs()) == 1
        fills, status, from_fills = _journaled(db, run_id)
    assert fills == reference[0]
    assert status == reference[1]
    assert from_fills == pytest.approx(status, abs=1e-9)

"""`hedgekit sweep --address`: trials on a Ray cluster, here a head node the test starts on
127.0.0.1 (its own temp dir and process group) and stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hedgekit.sweep.results import read_results
from tests.sweep._helpers import HEDGE, ray_env, run

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (only what this test started), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_sweep_on_a_ray_cluster_by_address(tmp_path):
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="hkray", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
        env={**os.environ, **ray_env()}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc = run(tmp_path, "sweep", str(HEDGE), "--param", "wallets.hedge.unit.value=0.01,0.02",
                   "--param", "wallets.hedge.leverage=1", "--from", "2025-05-10", "--to", "2025-05-17",
                   "--address", f"127.0.0.1:{port}", "--out", "out", "--quiet", env=ray_env())
        deadline = time.monotonic() + 180
        output, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
        assert proc.returncode == 0, output
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
    df, meta = read_results(tmp_path / "out")
    assert meta["executor"] == f"Ray cluster 127.0.0.1:{port}, 2 worker(s), data shared zero-copy"
    assert len(df) == 2 and df["error"].isna().all()


"""Shared bits of the sweep tests: the CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hedgekit.cli import app

ROOT = Path(__file__).resolve().parents[2]
HEDGE = ROOT / "examples" / "hedge_wallet.yaml"
ACCEPTANCE = ["--param", "wallets.hedge.unit.value=0.005,0.01,0.02,0.05", "--param", "wallets.hedge.leverage=1,2"]
HEDGEKIT = Path(sys.executable).with_name("hedgekit")


def ray_env() -> dict[str, str]:
    """No usage stats, no token (a local test cluster), no dashboard."""
    return {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def cli(tmp_path: Path, *args: str, ok: bool = True):
    res = CliRunner().invoke(app, ["--log-dir", str(tmp_path / "logs"), *args])
    if ok:
        assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def run(tmp_path: Path, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [str(HEDGEKIT), "--log-dir", str(tmp_path / "logs"), *args], cwd=tmp_path,
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

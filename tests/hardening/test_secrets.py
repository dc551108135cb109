"""Secrets never reach the console (issue 15, item 3): URL passwords in any position, config
values of fields that look like secrets; long values are cut. The secrets here are fake."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from hedgekit.cli import app

FAKE = "s3cret-FAKE-9f8e7d"


def test_a_journal_url_password_is_hidden_wherever_it_is():
    url = f"postgresql://hk:{FAKE}u@127.0.0.1:1/hk?password={FAKE}q&sslpassword={FAKE}s"
    res = CliRunner().invoke(app, ["status", "--db", url])
    assert res.exit_code != 0 and "cannot open" in res.output
    assert FAKE not in res.output and "127.0.0.1:1/hk" in res.output


def test_config_errors_never_echo_a_secret_and_cut_long_values(tmp_path):
    cfg = yaml.safe_load((__import__("hedgekit.cli", fromlist=["example_path"]).example_path("long_wallet.yaml")).read_text())
    cfg["wallets"][0]["api_key"] = f"sk_live_{FAKE}"
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["backtest", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "api_key" in res.output
    assert FAKE not in res.output and "unknown key" in res.output

    del cfg["wallets"][0]["api_key"]
    cfg["wallets"][0]["buy_fragment"] = "x" * 100_000
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["backtest", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "buy_fragment" in res.output
    assert "100,002 characters" in res.output and len(res.output) < 2_000

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


def test_keys_in_the_environment_reach_no_log_journal_report_or_console(tmp_path, monkeypatch):
    """A RECOMMENDATION replay with every wallet's keys set, then status and a backtest with
    its report: the fake keys are in no byte they leave behind (log files, the journal, the
    exported run, summary.json, report.html) nor on the console."""
    from tests.engine.test_live import busy_config, slice_csv

    for wallet in ("LONG", "HEDGE"):
        monkeypatch.setenv(f"HEDGEKIT_{wallet}_API_KEY", f"key-{FAKE}")
        monkeypatch.setenv(f"HEDGEKIT_{wallet}_API_SECRET", f"secret-{FAKE}")
    config, data = busy_config(tmp_path), slice_csv(tmp_path, 0.25)
    db, out, logs = tmp_path / "j.db", tmp_path / "out", tmp_path / "logs"
    runner = CliRunner()
    outputs = []
    for args in (
        ["--log-dir", str(logs), "run", str(config), "--mode", "recommendation", "--feed", f"replay:{data}",
         "--db", str(db), "--out", str(out)],
        ["--log-dir", str(logs), "status", "--db", str(db)],
        ["--log-dir", str(logs), "backtest", str(config), "--out", str(tmp_path / "backtest")],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        outputs.append(res.output)
    assert "RECOMMEND place" in outputs[0]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert any(p.parent == logs for p in files) and db in files and (out / "fills.csv") in files
    assert (tmp_path / "backtest" / "report.html") in files
    assert [p for p in files if FAKE.encode() in p.read_bytes()] == []
    assert not any(FAKE in o for o in outputs)

"""The README's configuration reference is what the config models say."""

from __future__ import annotations

from pathlib import Path

from hedgekit.docs import END, START, config_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_config_reference_in_readme_is_current():
    text = README.read_text()
    block = text[text.index(START): text.index(END) + len(END)]
    assert block == config_reference(), "README's configuration reference is stale: run `make docs`"


def test_reference_names_every_wallet_kind_and_key_fields():
    ref = config_reference()
    for needle in ("strategy: long_wallet", "strategy: hedge_wallet", "strategy: grid_hedge",
                   "`allocation`", "`num_levels`", "`take_profit_pct`", "`maintenance_margin_rate`"):
        assert needle in ref

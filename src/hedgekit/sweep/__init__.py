"""Sweeps and walk-forward optimization (SPEC §11): ``hedgekit sweep`` and ``hedgekit optimize``.

Layering: this package uses ``engine`` (a trial is a backtest) and ``report``; nothing below it
imports it. ``params`` (the ``--param`` syntax) needs only ``config``.
"""

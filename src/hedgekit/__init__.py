"""hedgekit: automated hedging strategies on crypto perpetual futures and spot."""

__version__ = "0.1.0"

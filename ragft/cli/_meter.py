"""The meter measuring commands use: the config's prices and budget, a ledger of their own, and
optionally simulated prices for the local models (``--price-as``), shared by ``eval`` and
``measure``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ragft.config import RagftConfig
from ragft.metering.meter import Ledger, Meter

__all__ = ["add_price_as", "measuring_meter", "simulated_label"]


def add_price_as(parser: Any) -> None:
    """Add ``--price-as MODEL`` and ``--embedding-price-as MODEL``."""
    parser.add_argument("--price-as", metavar="MODEL",
                        help="SIMULATE costs: charge the free local models as if they were this priced "
                        "chat model (e.g. gpt-4.1-mini; a local fine-tuned model at its fine-tuned "
                        "rates). Every output marks such costs as simulated")
    parser.add_argument("--embedding-price-as", metavar="MODEL", default="text-embedding-3-small",
                        help="with --price-as: the embedding model whose price local embeddings get "
                        "(default: %(default)s)")


def measuring_meter(cfg: RagftConfig, ledger: Path | None, args: argparse.Namespace) -> Meter:
    """A meter with the config's prices (simulated for local models with ``--price-as``) and
    budget, writing to ``ledger`` (no file when ``None``)."""
    from ragft.components import build_meter

    base = build_meter(cfg, ledger=False)
    prices = base.prices
    if getattr(args, "price_as", None):
        prices = prices.simulating(args.price_as, args.embedding_price_as)
    return Meter(prices, ledger=Ledger(ledger) if ledger is not None else None, budget=base.budget)


def simulated_label(meter: Meter) -> str | None:
    """``"gpt-4.1-mini / text-embedding-3-small"`` when prices are simulated, else ``None``."""
    sim = meter.prices.simulated_as
    return f"{sim[0]} / {sim[1]}" if sim else None

"""The demo's SQL: stock kept by inventory and shipments written by the worker, through
SQLAlchemy on SQLite.

No tracing code: ``tracehouse-run`` loads the SQLAlchemy instrumentation, so every statement
becomes a CLIENT span with ``db.system=sqlite`` and the file's name as ``db.name`` — a database
node on the service map. Blocking calls: async services run them in a worker thread.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, create_engine, insert, select, update

__all__ = ["Shipments", "Stock"]

_metadata = MetaData()

stock = Table("stock", _metadata, Column("sku", String, primary_key=True), Column("quantity", Integer, nullable=False))
shipments = Table(
    "shipments",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", String, nullable=False),
    Column("shipped_at", Float, nullable=False),
)

SKUS = tuple(f"sku-{n:03d}" for n in range(20))
RESTOCK = 500


def _engine_for(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 10})
    _metadata.create_all(engine)
    return engine


class Stock:
    """Stock levels per SKU; :meth:`reserve` takes one unit, restocking an empty SKU."""

    def __init__(self, url: str) -> None:
        self._engine = _engine_for(url)
        with self._engine.begin() as conn:
            known = set(conn.scalars(select(stock.c.sku)))
            missing = [{"sku": sku, "quantity": RESTOCK} for sku in SKUS if sku not in known]
            if missing:
                conn.execute(insert(stock), missing)

    def reserve(self) -> dict[str, object]:
        sku = random.choice(SKUS)  # noqa: S311 - demo data
        with self._engine.begin() as conn:
            left = conn.scalar(select(stock.c.quantity).where(stock.c.sku == sku)) or 0
            quantity = RESTOCK if left <= 1 else left - 1
            conn.execute(update(stock).where(stock.c.sku == sku).values(quantity=quantity))
        return {"sku": sku, "left": quantity}


class Shipments:
    """Shipments the worker has sent out."""

    def __init__(self, url: str) -> None:
        self._engine = _engine_for(url)

    def record(self, order_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(shipments).values(order_id=order_id, shipped_at=time.time()))

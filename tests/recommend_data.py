"""A small synthetic merchant with learnable behaviour, for recommender tests.

Each customer has a purchase rhythm (days between baskets) and a few favourite products they
rebuy; some stop buying half-way (lapsed). Deterministic (seeded)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from recommend.tables import Catalog, History, make_lines

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
N_PRODUCTS = 40


def synthetic_orders(n_customers: int = 300, days: int = 150, seed: int = 3):
    """Rows (customer index, order index, product index, day offset as float, quantity, amount)."""
    rng = np.random.default_rng(seed)
    rows = []
    order = 0
    for c in range(n_customers):
        rhythm = rng.choice([4, 7, 10, 20, 40])
        lapse = days * rng.uniform(0.3, 1.0) if rng.random() < 0.3 else days + 1
        favourites = rng.choice(N_PRODUCTS, size=4, replace=False)
        t = rng.uniform(0, rhythm)
        while t < min(days, lapse):
            items = set(rng.choice(favourites, size=rng.integers(1, 4), replace=False).tolist())
            if rng.random() < 0.5:
                items.add(int(rng.integers(0, N_PRODUCTS)))
            for p in sorted(items):
                q = int(rng.integers(1, 3))
                rows.append((c, order, p, t, q, q * (100 + 25 * p)))
            order += 1
            t += rng.exponential(rhythm)
    return rows


def synthetic_history(n_customers: int = 300, days: int = 150, seed: int = 3, inactive: tuple[int, ...] = ()) -> History:
    rows = synthetic_orders(n_customers, days, seed)
    c, o, p, t, q, a = (np.array(x) for x in zip(*rows)) if rows else (np.zeros(0, np.int64),) * 6
    ts = (START.timestamp() + t * 86_400).astype(np.int64)
    lines = make_lines(c, o, p, ts, q, a, n_customers, N_PRODUCTS)
    ok = np.ones(N_PRODUCTS, bool)
    ok[list(inactive)] = False
    catalog = Catalog((np.arange(N_PRODUCTS) % 5).astype(np.int32), 100 + 25 * np.arange(N_PRODUCTS, dtype=np.int64), ok,
                      [f"p{i}" for i in range(N_PRODUCTS)])
    return History(lines, catalog, [f"c{i}" for i in range(n_customers)], "USD")


def synthetic_batches(n_customers: int = 300, days: int = 150, seed: int = 3, orders_per_batch: int = 1500):
    """The same merchant as API batches: products and customers first, then orders."""
    rows = synthetic_orders(n_customers, days, seed)
    products = [{"id": f"p{i}", "title": f"Product {i}", "category": f"cat{i % 5}", "price": 100 + 25 * i,
                 "currency": "USD"} for i in range(N_PRODUCTS)]
    customers = [{"id": f"c{i}", "email": f"c{i}@shop.example.test"} for i in range(n_customers)]
    by_order: dict[int, list] = {}
    for c, o, p, t, q, a in rows:
        by_order.setdefault(o, []).append((c, p, t, q, a))
    orders = []
    for o, ls in by_order.items():
        when = (START + timedelta(days=float(ls[0][2]))).isoformat()
        lines = [{"product_id": f"p{p}", "quantity": q, "unit_price": a // q, "amount": a} for _, p, _, q, a in ls]
        orders.append({"id": f"o{o}", "customer_id": f"c{ls[0][0]}", "currency": "USD", "placed_at": when,
                       "paid_at": when, "merchandise_amount": sum(l["amount"] for l in lines), "lines": lines})
    yield {"products": products, "customers": customers}
    for i in range(0, len(orders), orders_per_batch):
        yield {"orders": orders[i:i + orders_per_batch]}

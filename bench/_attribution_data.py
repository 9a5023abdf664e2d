"""Synthetic history for the attribution benchmark (``bench/attribution.py``), built with NumPy
and bulk-loaded: raw DBAPI ``executemany`` of one prepared INSERT on SQLite, ``COPY`` through
psycopg's ``cursor.copy`` on PostgreSQL.

Ids are assigned here (rows in time order, as a live system writes them), so every reference
(order -> cart, send -> order, click -> send) is known without reading anything back. While
loading, the secondary indexes of the fact tables are dropped and rebuilt afterwards, and
foreign-key checks are off (the data is consistent by construction): the usual bulk-load
practice, and the load is not what is being measured.

Shape (per merchant), with the default sizes of issue #5:
* orders: 88% paid within minutes, 6% never paid (each gets a reminder send), 3% cancelled,
  3% paid hours later after a reminder (recovery); 2% come from a cart, half of those carts got
  a cart reminder; ~5% carry the coupon code of an earlier send of the same customer (a third
  typed in lower case with a dash), 0.5% an unknown code; ~4% of paid orders refunded (a third
  in full, some in two refunds).
* sends: 10% holdout, 8% suppressed, 2% failed, 25% delivered (with a receipt), 55% sent;
  email 50%, SMS 40%, MMS 10%; a quarter of the sent or delivered ones carry a coupon code;
  0.2% of receipts are stamped before the send (the loader clamps them).
* clicks: on sent or delivered sends, minutes to days after the send (0.3% stamped before it).
* customers' activity is skewed (gamma weights): some buy and receive much more than others.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

MS_H = 3_600_000
MS_D = 24 * MS_H
T_END = int(datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp() * 1000)
T_START = T_END - 365 * MS_D
ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
CAMPAIGNS = ("unpaid_order", "abandoned_cart", "low_frequency", "replenishment", "win_back", "broadcast")
CHANNELS = np.array(["email", "sms", "mms"], dtype=object)
FACT_TABLES = ("customers", "carts", "orders", "refunds", "sends", "clicks")


@dataclass
class Sizes:
    orders: int
    sends: int
    clicks: int
    customers: int


# ----------------------------------------------------------------------------- generation

def coupon_codes(ids: np.ndarray) -> np.ndarray:
    """A 10-character Crockford base-32 code per send id (already in normalized form)."""
    digits = np.empty((len(ids), 10), dtype=np.uint8)
    v = ids.astype(np.int64) * 7919 + 12345          # not the bare id: codes should not look sequential
    for k in range(9, -1, -1):
        digits[:, k] = ALPHABET[v % 32]
        v //= 32
    return digits.view("S10").ravel().astype("U10")


def _latest_before(keys_sorted: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.searchsorted(keys_sorted, queries, side="right") - 1


def generate(sizes: Sizes, seed: int, id_base: dict[str, int], merchant_id: int, campaign_ids: list[int]) -> dict:
    """Columns (NumPy arrays, times in ms, -1 for none) of every fact table for one merchant."""
    rng = np.random.default_rng(seed)
    n_c = sizes.customers
    weight = rng.gamma(0.8, size=n_c)
    weight /= weight.sum()
    cust_ids = id_base["customers"] + np.arange(n_c, dtype=np.int64)
    span = T_END - T_START

    # -- orders
    n_o = sizes.orders
    o_cust = cust_ids[rng.choice(n_c, n_o, p=weight)]
    # Every fact's own time stays before T_END: they were all ingested by then (the incremental
    # cursor follows updated_at, which ingestion sets to its own clock).
    o_placed = np.sort(T_START + rng.integers(0, span - 3 * MS_D, n_o))
    o_id = id_base["orders"] + np.arange(n_o, dtype=np.int64)
    u = rng.random(n_o)
    unpaid, cancelled, recovered = (u >= 0.88) & (u < 0.94), (u >= 0.94) & (u < 0.97), u >= 0.97
    o_paid = o_placed + rng.integers(0, 10 * 60_000, n_o)
    o_paid = np.where(recovered, o_placed + rng.integers(MS_H, 20 * MS_H, n_o), o_paid)
    o_paid = np.where(unpaid | (cancelled & (rng.random(n_o) < 0.5)), -1, o_paid)
    o_cancel = np.where(cancelled, o_placed + rng.integers(MS_H, 48 * MS_H, n_o), -1)
    amount = rng.integers(500, 30_000, n_o)
    # carts: 2% of orders come from one
    from_cart = np.flatnonzero(rng.random(n_o) < 0.02)
    k_id = id_base["carts"] + np.arange(len(from_cart), dtype=np.int64)
    k_cust = o_cust[from_cart]
    k_updated = o_placed[from_cart] - rng.integers(10 * 60_000, 3 * MS_H, len(from_cart))
    o_cart = np.full(n_o, -1, dtype=np.int64)
    o_cart[from_cart] = k_id
    # refunds: ~4% of paid orders; a third in full, a fifth of the partial ones in two parts
    paid_ok = (o_paid >= 0) & (o_cancel < 0)
    refunded_rows = np.flatnonzero(paid_ok & (rng.random(n_o) < 0.04))
    full = rng.random(len(refunded_rows)) < 1 / 3
    first_amt = np.where(full, amount[refunded_rows],
                         (amount[refunded_rows] * rng.uniform(0.1, 0.9, len(refunded_rows))).astype(np.int64) + 1)
    second = ~full & (rng.random(len(refunded_rows)) < 0.2)
    second_amt = (amount[refunded_rows] - first_amt) // 2
    second &= second_amt > 0
    r_at1 = o_paid[refunded_rows] + rng.integers(MS_D, 20 * MS_D, len(refunded_rows))
    r_order = np.concatenate([o_id[refunded_rows], o_id[refunded_rows[second]]])
    r_amount = np.concatenate([first_amt, second_amt[second]])
    r_at = np.concatenate([r_at1, r_at1[second] + rng.integers(MS_H, 5 * MS_D, int(second.sum()))])
    keep = r_at < T_END - MS_H
    r_order, r_amount, r_at = r_order[keep], r_amount[keep], r_at[keep]
    o_refunded = np.zeros(n_o, dtype=np.int64)
    np.add.at(o_refunded, r_order - id_base["orders"], r_amount)
    last_refund = np.full(n_o, -1, dtype=np.int64)
    np.maximum.at(last_refund, r_order - id_base["orders"], r_at)

    # -- sends: reminders of unpaid orders (order_id set), cart reminders, campaign sends
    rem = np.flatnonzero(unpaid | recovered)
    cart_rem = rng.random(len(from_cart)) < 0.5
    n_rem, n_krem = len(rem), int(cart_rem.sum())
    n_gen = max(sizes.sends - n_rem - n_krem, 0)
    send_w = 0.5 * weight + 0.5 / n_c
    s_cust = np.concatenate([o_cust[rem], k_cust[cart_rem], cust_ids[rng.choice(n_c, n_gen, p=send_w)]])
    s_time = np.concatenate([o_placed[rem] + 15 * 60_000, k_updated[cart_rem] + MS_H,
                             T_START + rng.integers(0, span - MS_H, n_gen)])
    s_order = np.concatenate([o_id[rem], np.full(n_krem + n_gen, -1, dtype=np.int64)])
    s_cart = np.concatenate([np.full(n_rem, -1, dtype=np.int64), k_id[cart_rem], np.full(n_gen, -1, dtype=np.int64)])
    s_camp = np.concatenate([np.zeros(n_rem, dtype=np.int64), np.ones(n_krem, dtype=np.int64),
                             rng.integers(2, len(CAMPAIGNS), n_gen)])
    by_time = np.argsort(s_time, kind="stable")
    s_cust, s_time, s_order, s_cart, s_camp = (a[by_time] for a in (s_cust, s_time, s_order, s_cart, s_camp))
    n_s = len(s_time)
    s_id = id_base["sends"] + np.arange(n_s, dtype=np.int64)
    u = rng.random(n_s)
    status = np.select([u < 0.10, u < 0.18, u < 0.20, u < 0.45], ["holdout", "suppressed", "failed", "delivered"],
                       "sent").astype(object)
    touch = (status == "sent") | (status == "delivered")
    s_sent = np.where(touch, s_time, -1)
    s_deliv = np.where(status == "delivered", s_time + rng.integers(2_000, 10 * 60_000, n_s), -1)
    early = (status == "delivered") & (rng.random(n_s) < 0.002)
    s_deliv[early] = s_time[early] - 1_000
    channel = CHANNELS[np.searchsorted([0.5, 0.9], rng.random(n_s), side="right")]
    has_code = touch & (rng.random(n_s) < 0.25)
    codes = np.full(n_s, None, dtype=object)
    codes[has_code] = coupon_codes(s_id[has_code])

    # -- coupons on orders: the latest coded send of the same customer before the placement
    c_rows = np.flatnonzero(has_code)
    c_rows = c_rows[np.lexsort((s_time[c_rows], s_cust[c_rows]))]
    c_key = s_cust[c_rows] * (1 << 42) + s_time[c_rows]
    want = np.flatnonzero(rng.random(n_o) < 0.05)
    pos = _latest_before(c_key, o_cust[want] * (1 << 42) + o_placed[want])
    hit = pos >= 0
    hit[hit] &= s_cust[c_rows[pos[hit]]] == o_cust[want[hit]]
    o_code = np.full(n_o, None, dtype=object)
    picked = codes[c_rows[pos[hit]]]
    typed = rng.random(len(picked)) < 1 / 3
    picked[typed] = [f"{c[:4].lower()}-{c[4:].lower()}" for c in picked[typed]]
    o_code[want[hit]] = picked
    o_code[rng.random(n_o) < 0.005] = "WELCOME10"

    # -- clicks on sent or delivered sends
    t_rows = np.flatnonzero(touch)
    n_k = sizes.clicks
    k_send_row = np.sort(t_rows[rng.integers(0, len(t_rows), n_k)]) if len(t_rows) and n_k else np.zeros(0, np.int64)
    k_time = s_time[k_send_row] + np.minimum(rng.exponential(3 * MS_H, n_k).astype(np.int64), 7 * MS_D)
    k_time = np.minimum(k_time, T_END - 60_000)
    early = rng.random(n_k) < 0.003
    k_time[early] = s_time[k_send_row[early]] - 2_000                            # stamped before the send
    by_click = np.argsort(k_time, kind="stable")
    k_send_row, k_time = k_send_row[by_click], k_time[by_click]

    o_updated = np.maximum.reduce([o_placed, o_paid, o_cancel, last_refund])
    s_updated = np.maximum.reduce([s_time, s_deliv])
    camp = np.asarray(campaign_ids, dtype=np.int64)
    return {
        "customers": dict(id=cust_ids, merchant_id=merchant_id),
        "carts": dict(id=k_id, customer_id=k_cust, updated=k_updated, merchant_id=merchant_id),
        "orders": dict(id=o_id, customer_id=o_cust, cart_id=o_cart, placed=o_placed, paid=o_paid, cancelled=o_cancel,
                       coupon=o_code, amount=amount, refunded=o_refunded, updated=o_updated, merchant_id=merchant_id),
        "refunds": dict(id=id_base["refunds"] + np.arange(len(r_order), dtype=np.int64), order_id=r_order,
                        amount=r_amount, at=r_at, merchant_id=merchant_id),
        "sends": dict(id=s_id, customer_id=s_cust, campaign_id=camp[s_camp], order_id=s_order, cart_id=s_cart,
                      status=status, channel=channel, time=s_time, sent=s_sent, delivered=s_deliv, coupon=codes,
                      updated=s_updated, merchant_id=merchant_id),
        "clicks": dict(id=id_base["clicks"] + np.arange(n_k, dtype=np.int64), send_id=s_id[k_send_row],
                       customer_id=s_cust[k_send_row], clicked=k_time, merchant_id=merchant_id),
    }


# ----------------------------------------------------------------------------- bulk load

def _columns(table: str, d: dict) -> dict:
    """Database columns of ``table``: (kind, values); kinds: int, int? (-1 = NULL), ts, ts?, str
    (object array, None = NULL), const."""
    n = len(d["id"])
    ids = d["id"]
    start = ("ts", np.full(n, T_START, dtype=np.int64))
    if table == "customers":
        return dict(id=("int", ids), merchant_id=("const", d["merchant_id"]), external_id=("str", _names("c", ids)),
                    email_consent=("const", "opted_in"), sms_consent=("const", "opted_in"),
                    created_at=start, updated_at=start)
    if table == "carts":
        return dict(id=("int", ids), merchant_id=("const", d["merchant_id"]), external_id=("str", _names("k", ids)),
                    customer_id=("int", d["customer_id"]), currency=("const", "USD"), source_updated_at=("ts", d["updated"]),
                    created_at=("ts", d["updated"]), updated_at=("ts", d["updated"]))
    if table == "orders":
        return dict(id=("int", ids), merchant_id=("const", d["merchant_id"]), external_id=("str", _names("o", ids)),
                    customer_id=("int", d["customer_id"]), cart_id=("int?", d["cart_id"]), currency=("const", "USD"),
                    placed_at=("ts", d["placed"]), paid_at=("ts?", d["paid"]), cancelled_at=("ts?", d["cancelled"]),
                    coupon_code=("str", d["coupon"]), merchandise_amount=("int", d["amount"]),
                    discount_amount=("const", 0), shipping_amount=("const", 500), tax_amount=("const", 0),
                    refunded_amount=("int", d["refunded"]), source_updated_at=("ts", d["updated"]),
                    created_at=("ts", d["placed"]), updated_at=("ts", d["updated"]))
    if table == "refunds":
        return dict(id=("int", ids), merchant_id=("const", d["merchant_id"]), external_id=("str", _names("r", ids)),
                    order_id=("int", d["order_id"]), amount=("int", d["amount"]), currency=("const", "USD"),
                    refunded_at=("ts", d["at"]), created_at=("ts", d["at"]))
    if table == "sends":
        reason = np.where(d["status"] == "suppressed", "frequency_cap", None)
        return dict(id=("int", ids), public_id=("str", _names("snd_b", ids)), merchant_id=("const", d["merchant_id"]),
                    campaign_id=("int", d["campaign_id"]), customer_id=("int", d["customer_id"]),
                    trigger_key=("str", _names("t", ids)), order_id=("int?", d["order_id"]),
                    cart_id=("int?", d["cart_id"]), status=("str", d["status"]), reason=("str", reason),
                    channel=("str", d["channel"]), planned_at=("ts", d["time"]), send_at=("ts", d["time"]),
                    p_ppm=("const", 0), order_value=("const", 0), commission_rate_bp=("const", 0), cost=("const", 0),
                    expected_commission_micro=("const", 0), picks=("const", "[]"), coupon_code=("str", d["coupon"]),
                    attempts=("const", 1), sent_at=("ts?", d["sent"]), delivered_at=("ts?", d["delivered"]),
                    created_at=("ts", d["time"]), updated_at=("ts", d["updated"]))
    if table == "clicks":
        return dict(id=("int", ids), merchant_id=("const", d["merchant_id"]), send_id=("int", d["send_id"]),
                    customer_id=("int", d["customer_id"]), position=("const", 0),
                    url=("const", "https://shop.example.test/p/1"), clicked_at=("ts", d["clicked"]))
    raise ValueError(table)


def _names(prefix: str, ids: np.ndarray) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in ids.tolist()], dtype=object)


def _ts_strings(ms: np.ndarray, kind: str) -> np.ndarray:
    """Timestamps as the database reads them: SQLite's naive 'YYYY-MM-DD HH:MM:SS.ffffff' (what
    SQLAlchemy writes there), PostgreSQL's ISO with 'Z'."""
    dt = ms.astype("datetime64[ms]")
    if kind == "postgresql":
        return np.datetime_as_string(dt, unit="ms", timezone="UTC")
    s = np.datetime_as_string(dt, unit="us")
    s.view(np.uint32).reshape(len(s), -1)[:, 10] = ord(" ")      # the 'T' -> ' ', in place
    return s


def _sqlite_column(spec, lo: int, hi: int):
    kind, v = spec
    if kind == "const":
        return [v] * (hi - lo)
    v = v[lo:hi]
    if kind == "int":
        return v.tolist()
    if kind == "int?":
        return np.where(v < 0, None, v.astype(object)).tolist()
    if kind in ("ts", "ts?"):
        s = _ts_strings(v, "sqlite").astype(object)
        if kind == "ts?":
            s[v < 0] = None
        return s.tolist()
    return v.tolist()


def _pg_column(spec, lo: int, hi: int):
    kind, v = spec
    if kind == "const":
        return [str(v)] * (hi - lo)
    v = v[lo:hi]
    if kind == "int":
        return v.astype(str).tolist()
    if kind == "int?":
        return np.where(v < 0, "\\N", v.astype(str)).tolist()
    if kind in ("ts", "ts?"):
        s = _ts_strings(v, "postgresql").astype(object)
        if kind == "ts?":
            s[v < 0] = "\\N"
        return s.tolist()
    return ["\\N" if x is None else x for x in v.tolist()]


def secondary_indexes(conn, kind: str, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the plain indexes of ``table`` (not those behind a primary
    key or unique constraint, which stay)."""
    if kind == "sqlite":
        return conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                    "AND sql IS NOT NULL", (table,)).all()
    return conn.exec_driver_sql(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename = %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", (table,)).all()


def write_rows(cur, kind: str, table: str, cols: dict, n: int, chunk: int) -> None:
    """Rows 0..n of ``cols`` (column specs) into ``table`` on a raw DB-API cursor, ``chunk`` at
    a time: COPY on PostgreSQL, executemany on SQLite. The bulk loaders of every benchmark."""
    names = ", ".join(cols)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        if kind == "sqlite":
            values = [_sqlite_column(spec, lo, hi) for spec in cols.values()]
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})", zip(*values))
        else:
            values = [_pg_column(spec, lo, hi) for spec in cols.values()]
            with cur.copy(f"COPY {table} ({names}) FROM STDIN") as cp:
                cp.write("\n".join(map("\t".join, zip(*values))) + "\n")


def reset_sequences(cur, tables) -> None:
    """PostgreSQL: each table's id sequence past its largest id (COPY set ids explicitly)."""
    for table in tables:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")


def bulk_load(engine, data: dict, chunk: int = 200_000) -> dict[str, int]:
    """Write the generated tables; returns rows per table."""
    kind = engine.dialect.name
    counts = {t: 0 for t in FACT_TABLES}
    with engine.begin() as conn:
        saved = {t: secondary_indexes(conn, kind, t) for t in FACT_TABLES}
        for t, ixs in saved.items():
            for name, _ in ixs:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if kind == "sqlite":
            cur.execute("PRAGMA foreign_keys=OFF")
        else:
            cur.execute("SET session_replication_role = replica")   # no FK triggers while loading
        for table in FACT_TABLES:
            for d in data[table]:
                n = len(d["id"])
                write_rows(cur, kind, table, _columns(table, d), n, chunk)
                counts[table] += n
        if kind == "postgresql":
            cur.execute("SET session_replication_role = DEFAULT")
            reset_sequences(cur, FACT_TABLES)
        raw.commit()
        if kind == "sqlite":
            cur.execute("PRAGMA foreign_keys=ON")      # only takes effect outside a transaction
    finally:
        raw.close()
    with engine.begin() as conn:
        for t, ixs in saved.items():
            for _, sql in ixs:
                conn.exec_driver_sql(sql)
        if kind == "sqlite":
            conn.exec_driver_sql("ANALYZE")
    if kind == "postgresql":
        # VACUUM ANALYZE, as after any bulk load: it sets the rows' hint bits and the visibility
        # map once (else the first timed run writes every page of the fresh tables back while
        # reading them, and autovacuum wakes up for the inserts in the middle of the timing).
        # Only our tables: a bare VACUUM would visit every schema of the database.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE " + ", ".join(FACT_TABLES))
    return counts

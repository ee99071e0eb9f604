"""Local exchange: order round-trip latency (p50/p99) and sustained orders/s through ccxt over loopback.

Run: ``.venv/bin/python benchmarks/bench_exchange.py [--orders 500]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.sim import AccountSpec, LocalExchange, SimOptions, DEFAULT_API_KEY, DEFAULT_SECRET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=500)
    args = parser.parse_args()
    opts = SimOptions(symbols=("BTC/USDT",), orders_per_10s=1_000_000, orders_per_day=10_000_000,
                      weight_limit=10_000_000,
                      accounts=(AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                                            balances={"USDT": "100000000", "BTC": "1000"}),))
    with LocalExchange(opts) as sim:
        client = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret)
        client.load_markets()
        price = float(sim.last_price("BTC/USDT"))
        rows = []
        for kind in ("market", "limit+cancel"):
            lat = []
            t_all = time.perf_counter()
            for i in range(args.orders):
                t0 = time.perf_counter()
                if kind == "market":
                    client.create_order("BTC/USDT", "market", "buy" if i % 2 == 0 else "sell", 0.001)
                else:
                    o = client.create_order("BTC/USDT", "limit", "buy", 0.001, round(price * 0.5, 2))
                    client.cancel_order(o["id"], "BTC/USDT")
                lat.append(time.perf_counter() - t0)
            total = time.perf_counter() - t_all
            ms = np.array(lat) * 1000
            n_req = args.orders * (1 if kind == "market" else 2)
            rows.append((kind, np.percentile(ms, 50), np.percentile(ms, 99), n_req / total))
    print(f"local exchange over loopback through ccxt {__import__('ccxt').__version__}, {args.orders} orders each")
    print(f"{'order kind':<14} {'p50 ms':>8} {'p99 ms':>8} {'requests/s':>11}")
    for kind, p50, p99, rate in rows:
        print(f"{kind:<14} {p50:>8.2f} {p99:>8.2f} {rate:>11.0f}")


if __name__ == "__main__":
    main()

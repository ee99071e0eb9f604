"""Local exchange: order round-trip latency (p50/p99) and sustained orders/s through ccxt over loopback.

Run: ``.venv/bin/python benchmarks/bench_exchange.py [--orders 500] [--threads 4] [--in-process]``.
By default the exchange runs in a child process so the client and the server do not share one GIL (as with
``thunes exchange serve``); ``--in-process`` measures the test setup (server thread beside the client).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np

from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange, SimOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4, help="clients placing orders at once (sustained rate)")
    parser.add_argument("--in-process", action="store_true", help="run the exchange in this process (tests' setup)")
    args = parser.parse_args()
    opts = _options()
    if args.in_process:
        with LocalExchange(opts) as sim:
            rows = _measure(sim.base_url, args)
    else:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        stop = ctx.Event()
        child = ctx.Process(target=_serve, args=(queue, stop), daemon=True)
        child.start()
        try:
            rows = _measure(queue.get(timeout=60), args)
        finally:
            stop.set()
            child.join(10)
    where = "in-process" if args.in_process else "separate process"
    print(f"local exchange ({where}) over loopback through ccxt {__import__('ccxt').__version__}, "
          f"{args.orders} orders each")
    print(f"{'order kind':<14} {'p50 ms':>8} {'p99 ms':>8} {'orders/s':>9} {'requests/s':>11}")
    for kind, p50, p99, orders_s, requests_s in rows:
        print(f"{kind:<14} {p50:>8.2f} {p99:>8.2f} {orders_s:>9.0f} {requests_s:>11.0f}")


def _options() -> SimOptions:
    return SimOptions(symbols=("BTC/USDT",), orders_per_10s=1_000_000, orders_per_day=10_000_000,
                      weight_limit=10_000_000,
                      accounts=(AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                                            balances={"USDT": "100000000", "BTC": "1000"}),))


def _serve(queue, stop) -> None:  # noqa: ANN001 - multiprocessing primitives
    with LocalExchange(_options()) as sim:
        queue.put(sim.base_url)
        stop.wait()


Row = tuple[str, float, float, float, float]  # kind, p50 ms, p99 ms, orders/s, requests/s


def _measure(base_url: str, args: argparse.Namespace) -> list[Row]:
    client = make_local_exchange_client(base_url, DEFAULT_API_KEY, DEFAULT_SECRET)
    client.load_markets()
    price = float(client.fetch_ticker("BTC/USDT")["last"])
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
        n_req = args.orders * (1 if kind == "market" else 2)  # limit+cancel: two requests per order
        rows.append((kind, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), args.orders / total,
                     n_req / total))
    rows.append(_sustained(base_url, args.orders, args.threads))
    return rows


def _sustained(base_url: str, orders: int, threads: int) -> Row:
    """Market orders from ``threads`` clients at once: the exchange's sustained orders/s."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(_: int) -> list[float]:
        client = make_local_exchange_client(base_url, DEFAULT_API_KEY, DEFAULT_SECRET)
        client.load_markets()
        lat = []
        for i in range(orders // threads):
            t0 = time.perf_counter()
            client.create_order("BTC/USDT", "market", "buy" if i % 2 == 0 else "sell", 0.001)
            lat.append(time.perf_counter() - t0)
        return lat

    t_all = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        lat = [x for part in pool.map(worker, range(threads)) for x in part]
    total = time.perf_counter() - t_all
    ms = np.array(lat) * 1000
    rate = len(lat) / total
    return f"market x{threads}", float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), rate, rate


if __name__ == "__main__":
    main()

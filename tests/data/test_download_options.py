"""``thunes data download`` options (issue 14, items 6 and 7).

Rules: several ``--symbol`` download several pairs in one run, where a command that handles one symbol
refuses a repeated ``--symbol`` instead of keeping the last; the base URL means the exchange host
everywhere (``http://HOST:PORT``, ``/api/v3`` accepted), so the host form that paper/testnet/live take
works for downloads too, and anything else is refused at parse time with the expected form, never a
404 retried for half a minute. Runs against a local Binance-format HTTP server (tests/data/conftest.py).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.config import load_settings
from thunes.core.errors import ConfigError
from thunes.data.store import open_store
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions


def _download(db: str, base_url: str, *symbols: str, extra: tuple[str, ...] = ()):
    args = ["data", "download", "--timeframe", "1h", "--since", "2024-01-01", "--until", "2024-01-02",
            "--base-url", base_url, "--db", db, *extra]
    for s in symbols:
        args += ["--symbol", s]
    return CliRunner().invoke(root, args)


def test_several_symbols_download_in_one_run(kline_server, tmp_path):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    result = _download(db, kline_server.base_url, "BTC/USDT", "ETH/USDT", extra=("--json",))
    assert result.exit_code == 0, result.output
    assert [(r["symbol"], r["written"]) for r in json.loads(result.stdout)] == [("BTC/USDT", 24), ("ETH/USDT", 24)]
    with open_store(db) as store:
        assert sorted((s.symbol, s.rows) for s in store.series()) == [("BTC/USDT", 24), ("ETH/USDT", 24)]


def test_the_host_form_of_the_base_url_downloads_like_the_api_v3_form(kline_server, tmp_path):
    host = kline_server.base_url.removesuffix("/api/v3")
    result = _download(f"sqlite:///{tmp_path}/s.sqlite", host, "BTC/USDT")
    assert result.exit_code == 0, result.output
    assert "24 candles" in result.output
    assert CcxtExchange(CcxtOptions(mode="live", base_url=host)).client.urls["api"]["public"] == f"{host}/api/v3"
    assert CcxtOptions(base_url=host).rest_root() == CcxtOptions(base_url=f"{host}/api/v3/").rest_root() == host


@pytest.mark.parametrize("bad", ["127.0.0.1:8765", "http://127.0.0.1:8765/v3", "ftp://host", "http://h/api/v3?x=1"])
def test_a_base_url_that_is_not_the_exchange_host_is_refused_at_parse_time(tmp_path, bad, monkeypatch):
    result = _download(f"sqlite:///{tmp_path}/s.sqlite", bad, "BTC/USDT")
    assert result.exit_code == 2 and "--base-url" in result.output and "e.g. http://127.0.0.1:8765" in result.output

    monkeypatch.setenv("THUNES_EXCHANGE__BASE_URL", bad)
    with pytest.raises(ConfigError, match="exchange.base_url"):
        load_settings(None)


def test_a_command_for_one_symbol_refuses_a_repeated_symbol(tmp_path):
    result = CliRunner().invoke(root, ["data", "export", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT",
                                       "--timeframe", "1h", "--out", str(tmp_path / "x.csv"),
                                       "--db", f"sqlite:///{tmp_path}/s.sqlite"])
    assert result.exit_code == 2
    assert "--symbol" in result.output and "given 2 times (BTC/USDT, ETH/USDT); this command takes one" in result.output
    assert not (tmp_path / "x.csv").exists()

"""`thunes paper / live / parity` refuse nonsense flags at parse time (exit 2, one line naming the option)
instead of running with rc 0: a repeated --symbol (one trader trades one pair; several pairs are `thunes bot
run`), a non-positive --duration, --bars 0."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thunes.cli import root


@pytest.mark.parametrize(("argv", "option"), [
    (["paper", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--bars", "5"], "--symbol"),
    (["paper", "--timeframe", "1h", "--timeframe", "5m", "--bars", "5"], "--timeframe"),
    (["paper", "--duration", "-5"], "--duration"),
    (["paper", "--duration", "0"], "--duration"),
    (["paper", "--bars", "0"], "--bars"),
    (["live", "--live", "--i-understand-the-risks", "--bars", "0"], "--bars"),
    (["parity", "--bars", "0"], "--bars"),
    (["parity", "--symbol", "BTC/USDT", "--symbol", "SOL/USDT"], "--symbol"),
])
def test_nonsense_flags_are_refused_before_anything_runs(argv, option, tmp_path):
    result = CliRunner().invoke(root, argv, env={"THUNES_TRADER__STATE_DIR": str(tmp_path / "state")})
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert not (tmp_path / "state").exists()  # nothing was started

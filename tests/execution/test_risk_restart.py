"""Risk state that spans a day survives a SIGKILL, through the start path ``thunes paper``/``live`` use
(:func:`build_stack`), and one account is traded by one process at a time.

Each trader life is a real process (forked by ``tests/execution/risk_life.py``) killed with SIGKILL while it
holds the account; the next life must know the day's realised loss, the cool-down of the last losing trade,
the kill-switch (tripped by the loss or set by hand), reduce-only mode and the baseline of a manual
reset. The operator's commands are the real ``thunes risk`` CLI, run between two lives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from thunes.exchange.sim import LocalExchange
from thunes.execution.audit import AuditTrail, verify_audit
from thunes.execution.db import Database
from thunes.execution.positions import PositionTracker

D = Decimal
REPO = Path(__file__).resolve().parents[2]
T0 = 1_704_110_400_000  # 2024-01-01 12:00 UTC: every life below runs on the same market day
MINUTE = 60_000
RISK = {"max_daily_loss": "50", "max_loss_per_trade": "10", "max_positions": 3, "max_position_quote": "100",
        "cool_down_minutes": 30}


@pytest.fixture(scope="module")
def sim():
    exchange = LocalExchange().start()
    yield exchange
    exchange.stop()


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "THUNES_TRADER__STATE_DIR": str(tmp_path / "trader"),
            "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"), "THUNES_AUDIT__FSYNC": "always"}


def _cfg(sim, tmp_path: Path, *, clock_ms: int, steps: list, db_url: str | None = None) -> dict:
    return {"base_url": sim.base_url, "api_key": sim.api_key, "secret": sim.secret,
            "state_dir": str(tmp_path / "trader" / "local"), "db_url": db_url,
            "risk_state_path": str(tmp_path / "trader" / "local" / "risk_state.json"),
            "audit_path": str(tmp_path / "audit.jsonl"), "risk": RISK, "clock_ms": clock_ms, "steps": steps}


class Life:
    """One trader process, forked by the zygote (``tests/execution/risk_life.py``) from imports already made."""

    def __init__(self, zygote: subprocess.Popen, cfg: dict, out: Path) -> None:
        self.out = out
        zygote.stdin.write(json.dumps({**cfg, "out": str(out)}) + "\n")
        zygote.stdin.flush()
        answer = zygote.stdout.readline().split()
        assert answer and answer[0] == "pid", f"the zygote said {answer!r}"
        self.pid = int(answer[1])

    def until_held(self, timeout_s: float = 120.0) -> dict:
        """What the life printed until it held the account (or was refused it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            said: dict = {}
            if self.out.exists():
                for line in self.out.read_text().splitlines():
                    said.update(json.loads(line))
            if "holding" in said or "refused" in said:
                return said
            if not _alive(self.pid):
                raise AssertionError(f"life {self.pid} died saying {said}; see the zygote's log")
            time.sleep(0.02)
        raise AssertionError(f"life {self.pid} did not start in {timeout_s} s; see the zygote's log")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended by itself (refused)
        while _alive(self.pid):  # the kernel reaps it (SIGCHLD ignored in the zygote)
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture()
def zygote(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.execution.risk_life"], cwd=REPO, env=_env(tmp_path),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(tmp_path / "life.log", "a"),
                            text=True)
    yield proc
    proc.stdin.close()
    proc.wait(30)


def _start(zygote, cfg: dict, tmp_path: Path) -> Life:
    return Life(zygote, cfg, tmp_path / f"life-{time.monotonic_ns()}.jsonl")


def _life(zygote, sim, tmp_path: Path, *, clock_ms: int, steps: list, db_url: str | None = None) -> dict:
    """Run one life to the point where it holds the account, SIGKILL it, return its last risk snapshot."""
    life = _start(zygote, _cfg(sim, tmp_path, clock_ms=clock_ms, steps=[*steps, ["state"]], db_url=db_url), tmp_path)
    try:
        said = life.until_held()
    finally:
        life.kill()
    assert "state" in said, f"the life said {said}; see {tmp_path / 'life.log'}"
    return said["state"]


def _risk_cli(tmp_path: Path, *args: str):
    """``thunes risk ...`` as an operator runs it, while the trader's process is dead (between two lives)."""
    from click.testing import CliRunner

    from thunes.cli import root

    env = {"THUNES_TRADER__STATE_DIR": str(tmp_path / "trader"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
           "THUNES_AUDIT__FSYNC": "always", "THUNES_CONFIG": None}
    return CliRunner().invoke(root, ["risk", *args], env=env, catch_exceptions=False)


def test_the_days_loss_and_the_cool_down_survive_a_sigkill_and_the_second_loss_trips_the_switch(zygote, sim, tmp_path):
    # Life 1 loses 45 of the 50 allowed, then is killed.
    first = _life(zygote, sim, tmp_path, clock_ms=T0, steps=[["lose", "A/USDT", "45"]])
    assert D(first["realised_today"]) == D(-45) and not first["kill_switch"]
    assert first["cool_down_until_ms"] == T0 + 30 * MINUTE
    # Life 2, ten minutes later: it starts with the day's -45 and the cool-down; losing 10 more trips the switch.
    second = _life(zygote, sim, tmp_path, clock_ms=T0 + 10 * MINUTE, steps=[["state"], ["lose", "B/USDT", "10"]])
    assert second["mode"] == "HALTED" and D(second["realised_today"]) == D(-55)
    assert "daily loss 55" in second["kill_reason"] and second["kill_operator"] == "risk-manager"
    # Life 3: the automatic trip is still on (only a person switches it off), and so is the day's loss.
    third = _life(zygote, sim, tmp_path, clock_ms=T0 + 20 * MINUTE, steps=[])
    assert third["mode"] == "HALTED" and D(third["realised_today"]) == D(-55)
    assert third["cool_down_until_ms"] == T0 + 10 * MINUTE + 30 * MINUTE
    records = AuditTrail.read(tmp_path / "audit.jsonl")
    assert sum(r.kind == "config_change" for r in records) == 3  # every start audits its settings
    assert [r.payload["on"] for r in records if r.kind == "kill_switch"] == [True]  # tripped once, audited once
    assert verify_audit(tmp_path / "audit.jsonl").ok


def test_the_restored_state_is_what_the_first_life_held_before_its_second_loss(zygote, sim, tmp_path):
    """The start of life 2 alone (no new loss): realised -45 and the running cool-down, from the database."""
    _life(zygote, sim, tmp_path, clock_ms=T0, steps=[["lose", "A/USDT", "45"]])
    restarted = _life(zygote, sim, tmp_path, clock_ms=T0 + 10 * MINUTE, steps=[])
    assert D(restarted["realised_today"]) == D(-45) and restarted["mode"] == "ACTIVE"
    assert restarted["cool_down_until_ms"] == T0 + 30 * MINUTE


def test_switches_set_by_hand_and_the_reset_baseline_survive_a_sigkill(zygote, sim, tmp_path):
    state = ("--state-dir", str(tmp_path / "trader" / "local"))
    # A loss of 55 trips the switch; the operator reviews it and switches it off.
    _life(zygote, sim, tmp_path, clock_ms=T0, steps=[["lose", "A/USDT", "55"]])
    off = _risk_cli(tmp_path, "kill-switch", "off", "--reason", "loss reviewed", "--operator", "alice", *state)
    assert off.exit_code == 0, off.output
    # After the reset the day's loss counts from -55: a restart must not trip again on the old loss,
    # and a further loss of 10 is -10 against the limit, still trading.
    after_reset = _life(zygote, sim, tmp_path, clock_ms=T0 + 40 * MINUTE, steps=[["lose", "B/USDT", "10"]])
    assert after_reset["mode"] == "ACTIVE" and D(after_reset["daily_pnl"]) == D(-10)
    assert D(after_reset["realised_today"]) == D(-65)
    again = _life(zygote, sim, tmp_path, clock_ms=T0 + 80 * MINUTE, steps=[])
    assert again["mode"] == "ACTIVE" and D(again["daily_pnl"]) == D(-10)
    # Reduce-only, then the kill-switch, by hand: both hold in the next lives.
    assert _risk_cli(tmp_path, "reduce-only", "on", "--reason", "month end", "--operator", "bob", *state).exit_code == 0
    reducing = _life(zygote, sim, tmp_path, clock_ms=T0 + 90 * MINUTE, steps=[])
    assert reducing["mode"] == "REDUCING" and reducing["reduce_only"]
    assert _risk_cli(tmp_path, "kill-switch", "on", "--reason", "incident", "--operator", "bob", *state).exit_code == 0
    halted = _life(zygote, sim, tmp_path, clock_ms=T0 + 100 * MINUTE, steps=[])
    assert halted["mode"] == "HALTED" and halted["kill_operator"] == "bob" and halted["reduce_only"]
    status = _risk_cli(tmp_path, "status", "--json", *state)
    assert json.loads(status.output)["mode"] == "HALTED"
    records = AuditTrail.read(tmp_path / "audit.jsonl")
    manual = [(r.kind, r.payload["on"], r.payload["operator"]) for r in records
              if r.kind in ("kill_switch", "reduce_only") and r.payload["operator"] != "risk-manager"]
    assert manual == [("kill_switch", False, "alice"), ("reduce_only", True, "bob"), ("kill_switch", True, "bob")]


def _open_positions(url: str) -> int:
    with Database.connect(url) as db:
        return len(PositionTracker(db).open_positions())


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_six_trader_processes_on_one_account_one_trades_and_five_are_refused(zygote, sim, tmp_path, engine, request):
    """One account, one risk manager: six processes asking for six positions each never exceed MAX_POSITIONS."""
    url = (request.getfixturevalue("postgres_url") if engine == "postgresql"
           else f"sqlite:///{tmp_path / 'shared.sqlite'}")
    symbols = [f"S{i}/USDT" for i in range(6)]
    lives = [_start(zygote, {**_cfg(sim, tmp_path, clock_ms=T0, steps=[["enter", *symbols]], db_url=url), "hold": 60},
                    tmp_path) for _ in range(6)]
    try:
        said = [life.until_held() for life in lives]
    finally:
        for life in lives:
            life.kill()
    winners = [s for s in said if "opened" in s]
    refused = [s["refused"] for s in said if "refused" in s]
    assert len(winners) == 1 and len(refused) == 5, said
    assert len(winners[0]["opened"]) == 3
    assert _open_positions(url) == 3
    holder = winners[0]["holding"]
    for message in refused:
        assert "another trader is trading this account" in message and f"pid {holder} on " in message
    # The lease died with its SIGKILLed holder: a restart takes it, knows the 3 positions and opens no 4th.
    restarted = _life(zygote, sim, tmp_path, clock_ms=T0, steps=[["enter", "S9/USDT"]], db_url=url)
    assert restarted["open_positions"] == symbols[:3] and _open_positions(url) == 3

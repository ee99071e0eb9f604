"""``thunes risk ...`` and ``thunes audit verify``: the operator's handles on the execution safety core.

The kill-switch and reduce-only mode live in ``<trader.state_dir>/<mode>/risk_state.json``, the file every
trader of that mode reads at start and watches while it runs, so a change here reaches a trader running
in another process at its next decision, and every later run. Every change is written (and fsynced) to
the audit trail at settings ``audit.path`` with the operator's name and reason *before* it is saved; the
commands refuse to run when that trail is not a real file (``/dev/null``).

The execution database is ``<state-dir>/execution.sqlite``, or the one named by ``latest_run.json`` in
the state folder (local paper runs keep their journal in their run folder and write that pointer). A
replayed account's "today" is the market day of its last activity, not the wall-clock day.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import click

from thunes.core.errors import ConfigError

__all__ = ["register"]


def _state_dir(app: Any, mode: str | None, state_dir: str | None) -> Path:
    if state_dir:
        return Path(state_dir)
    return Path(app.settings.trader.state_dir) / (mode or app.settings.exchange.mode)


def _db_url(state_dir: Path, db: str | None) -> str | None:
    """The execution database URL: ``--db``, else the latest run's (pointer file), else the default SQLite
    file; None when none exists yet."""
    from thunes.execution.risk import read_run_pointer

    if db:
        return db
    pointed = str(read_run_pointer(state_dir).get("db_url") or "")
    if pointed.startswith("sqlite:///") and not Path(pointed[len("sqlite:///"):]).exists():
        pointed = ""  # the run folder was removed: do not create an empty database in its place
    if pointed:
        return pointed
    path = state_dir / "execution.sqlite"
    return f"sqlite:///{path.resolve()}" if path.exists() else None


def _account_clock(state_dir: Path, tracker: Any) -> tuple[Any, str]:
    """The account's clock and how "today" was chosen: the wall clock, or for a replayed account the market
    time of its last activity (a replay trades days long past)."""
    from thunes.core.clock import LiveClock, SimulatedClock
    from thunes.execution.risk import read_run_pointer

    if read_run_pointer(state_dir).get("clock") == "replay" and tracker is not None:
        last = tracker.last_activity_ms()
        if last is not None:
            return SimulatedClock(last), "replay: the market day of the last activity"
    return LiveClock(), "UTC"


@contextmanager
def _risk(app: Any, state_dir: Path, db: str | None, *, audited: bool) -> Iterator[tuple[Any, Any, str]]:
    """A risk manager restored exactly as a trader restores it (:meth:`RiskManager.restore_from`): the
    switches from the state file, positions, the day's PnL and the cool-down from the execution database.
    Yields ``(manager, tracker or None, how "today" was chosen)``."""
    from thunes.execution.audit import AuditTrail
    from thunes.execution.db import Database
    from thunes.execution.positions import PositionTracker
    from thunes.execution.risk import RiskManager

    audit = None
    if audited:
        # The trail refuses a path that keeps no record (a directory, /dev/null) before anything changes: a
        # safety decision is never taken without its audit record. The settings' key: one chain, one key.
        audit = AuditTrail.from_settings(app.settings.audit)
    url = _db_url(state_dir, db)
    database = Database.connect(url) if url is not None else None
    try:
        tracker = PositionTracker(database) if database is not None else None
        clock, day_rule = _account_clock(state_dir, tracker)
        manager = RiskManager(app.settings.risk, clock=clock, audit=audit, state_path=state_dir / "risk_state.json")
        if tracker is not None:
            manager.restore_from(tracker)
        yield manager, tracker, day_rule
    finally:
        if database is not None:
            database.close()
        if audit is not None:
            audit.close()


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


_STATE_OPTIONS = [
    click.option("--mode", type=click.Choice(["local", "testnet", "live"]), default=None,
                 help="Which trader's state (default: settings exchange.mode)."),
    click.option("--state-dir", default=None, type=click.Path(file_okay=False),
                 help="State folder (default: <trader.state_dir>/<mode>)."),
]


def _state_options(fn):  # noqa: ANN001, ANN201
    for option in reversed(_STATE_OPTIONS):
        fn = option(fn)
    return fn


def register(root: click.Group) -> None:
    from thunes.cli import pass_app

    @root.group()
    def risk() -> None:
        """Risk manager: status, kill-switch, reduce-only mode, order journal."""

    @risk.command("status")
    @_state_options
    @click.option("--db", default=None, metavar="URL",
                  help="Execution database (default: the latest run's, else <state-dir>/execution.sqlite).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
    @pass_app
    def status(app: Any, mode: str | None, state_dir: str | None, db: str | None, as_json: bool) -> None:
        """Show the risk mode, kill-switch, limits, today's PnL, positions and open orders.

        \b
        Example:
          thunes risk status
          thunes risk status --mode live --json
        """
        from thunes.execution.journal import OrderJournal

        folder = _state_dir(app, mode, state_dir)
        positions: list[Any] = []
        open_orders: list[Any] = []
        with _risk(app, folder, db, audited=False) as (manager, tracker, day_rule):
            if tracker is not None:
                positions = tracker.open_positions()
                open_orders = OrderJournal(tracker.db).open_orders()
            snap = manager.state
            now = manager.clock.now_ms()
            day = datetime.fromtimestamp(now / 1000, tz=timezone.utc).date().isoformat()
            journal = tracker.db.safe_url if tracker is not None else None
        has_db = tracker is not None
        limits = app.settings.risk
        if as_json:
            out = snap.to_json()
            out["day"] = day
            out["day_rule"] = day_rule
            out["limits"] = json.loads(limits.model_dump_json())
            out["positions"] = [{"symbol": p.symbol, "qty": str(p.qty), "cost": str(p.cost)} for p in positions]
            out["open_orders"] = [{"client_order_id": e.client_order_id, "symbol": e.symbol, "side": str(e.side),
                                   "status": str(e.status), "qty": str(e.qty)} for e in open_orders]
            click.echo(json.dumps(out, indent=2))
            return
        colour = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}[str(snap.mode)]
        click.echo(f"mode            {click.style(str(snap.mode), fg=colour, bold=True)}   (state {folder})")
        if snap.kill_switch:
            click.echo(f"kill-switch     ON since {_iso(snap.kill_since_ms)} by {snap.kill_operator}: {snap.kill_reason}")
        else:
            click.echo("kill-switch     off")
        click.echo(f"reduce-only     {'on' if snap.reduce_only else 'off'}")
        click.echo(f"daily PnL       {snap.daily_pnl} (realised {snap.realised_today}) / limit -{limits.max_daily_loss}"
                   f"   on {day} ({day_rule})")
        click.echo(f"limits          max positions {limits.max_positions}, loss per trade {limits.max_loss_per_trade}, "
                   f"position {limits.max_position_quote}, cool-down {limits.cool_down_minutes} min")
        click.echo(f"cool-down until {_iso(snap.cool_down_until_ms) if snap.cool_down_until_ms > now else '-'}")
        if journal is not None:
            click.echo(f"journal         {journal}")
        click.echo(f"positions       {len(positions)}" + ("" if has_db else "   (no execution database yet)"))
        for p in positions:
            click.echo(f"  {p.symbol:<12} qty {p.qty}  avg {p.avg_price}  cost {p.cost}")
        click.echo(f"open orders     {len(open_orders)}")
        for e in open_orders:
            click.echo(f"  {e.client_order_id}  {e.symbol} {e.side} {e.qty} {e.status}")

    @risk.command("orders")
    @_state_options
    @click.option("--db", default=None, metavar="URL",
                  help="Execution database (default: the latest run's, else <state-dir>/execution.sqlite).")
    @click.option("--all", "show_all", is_flag=True, help="Every journaled order, not only the unfinished ones.")
    @click.option("--limit", default=50, show_default=True, help="Show at most this many (newest last).")
    @pass_app
    def orders(app: Any, mode: str | None, state_dir: str | None, db: str | None, show_all: bool,
               limit: int) -> None:
        """List the order journal: unfinished orders (PENDING, SENT, NEW, PARTIALLY_FILLED) or --all.

        A PENDING or SENT order is one whose outcome is not known yet; the trader resolves it at its
        next start or reconciliation, by client order id.

        \b
        Example:
          thunes risk orders
          thunes risk orders --all --limit 20
        """
        from thunes.execution.db import Database
        from thunes.execution.journal import OrderJournal

        folder = _state_dir(app, mode, state_dir)
        url = _db_url(folder, db)
        if url is None:
            click.echo(f"no execution database in {folder}")
            return
        with Database.connect(url) as database:
            journal = OrderJournal(database)
            entries = journal.entries() if show_all else journal.open_orders()
        shown = entries[-limit:] if limit > 0 else entries
        click.echo(f"{len(entries)} order(s){'' if show_all else ' not finished'}"
                   + (f", showing the last {len(shown)}" if len(shown) < len(entries) else ""))
        for e in shown:
            avg = e.avg_price
            click.echo(f"{_iso(e.created_ms)}  {e.client_order_id:<36} {e.symbol:<10} {str(e.side):<4} "
                       f"{str(e.status):<16} qty {e.qty} filled {e.filled_qty}"
                       + (f" @ {avg:.8f}" if avg is not None else "") + (f"  [{e.error}]" if e.error else ""))

    def _switch(kind: str):  # noqa: ANN202
        @_state_options
        @click.argument("state", type=click.Choice(["on", "off"]))
        @click.option("--reason", required=True, help="Why (written to the audit trail).")
        @click.option("--operator", required=True, help="Who (written to the audit trail).")
        @click.option("--db", default=None, metavar="URL",
                      help="Execution database (default: the latest run's, else <state-dir>/execution.sqlite).")
        @pass_app
        def command(app: Any, state: str, reason: str, operator: str, mode: str | None,
                    state_dir: str | None, db: str | None) -> None:
            folder = _state_dir(app, mode, state_dir)
            # Restored like a trader (the day's loss included) so that switching off sets the right baseline.
            with _risk(app, folder, db, audited=True) as (manager, _, _):
                if kind == "kill":
                    snap = manager.kill_switch(state == "on", reason=reason, operator=operator)
                else:
                    snap = manager.reduce_only(state == "on", reason=reason, operator=operator)
            click.echo(f"{'kill-switch' if kind == 'kill' else 'reduce-only'} {state}; mode {snap.mode} "
                       f"(state {folder / 'risk_state.json'}, audited in {app.settings.audit.path})")

        return command

    kill = _switch("kill")
    kill.__doc__ = """Switch the kill-switch on (nothing is sent) or off; audited with --reason and --operator.

    A tripped kill-switch (daily loss limit reached) stays on until switched off here.

    \b
    Example:
      thunes risk kill-switch on --reason "exchange incident" --operator alice
      thunes risk kill-switch off --reason "reviewed losses" --operator alice
    """
    risk.command("kill-switch")(kill)
    reduce = _switch("reduce")
    reduce.__doc__ = """Reduce-only mode on (only exits are allowed) or off; audited.

    \b
    Example:
      thunes risk reduce-only on --reason "end of month" --operator bob
    """
    risk.command("reduce-only")(reduce)

    @click.command("verify")
    @click.argument("file", required=False, type=click.Path(dir_okay=False))
    @_state_options
    @click.option("--db", default=None, metavar="URL",
                  help="Execution database holding the anchors (default: <state dir>/execution.sqlite).")
    @click.option("--anchor", "expect", multiple=True, metavar="SEQ:HASH",
                  help="An anchor kept elsewhere (the daily summary's 'audit:SEQ:HASH'); repeatable.")
    @click.option("--allow-legacy", is_flag=True,
                  help="Accept an unkeyed (pre-HMAC) file, with a warning, instead of refusing it.")
    @pass_app
    def verify(app: Any, file: str | None, mode: str | None, state_dir: str | None, db: str | None,
               expect: tuple[str, ...], allow_legacy: bool) -> None:
        """Verify an audit trail (default: settings audit.path): HMAC chain, head file and anchors.

        Checks every record's HMAC-SHA256 under the settings' key (audit.key, else audit.key_file, else
        <audit folder>/keys/audit.key), that the head file exists and names a record of the file, and that
        the file holds every anchor recorded in the execution database (and every --anchor given) with the
        anchored hash. Prints which checks ran. Exits 1 and names the first problem when a record was
        edited, forged, removed or reordered, the head is missing or garbage, or the file is shorter than
        an anchor. A torn last line (crash mid-write) is reported but is not an error.

        \b
        Example:
          thunes audit verify
          thunes audit verify data/audit.jsonl --db sqlite:///data/trader/live/execution.sqlite
          thunes audit verify --anchor audit:1234:9f86d081884c7d65
        """
        from thunes.execution.audit import AuditAnchors, audit_key, default_key_file, verify_audit
        from thunes.execution.db import Database, _mask

        settings = app.settings.audit
        path = Path(file) if file else Path(settings.path)
        if not path.exists():
            raise ConfigError(f"audit file {path} does not exist")
        key = audit_key(settings, path=path, create=False)
        url = _db_url(_state_dir(app, mode, state_dir), db)
        database = Database.connect(url) if url else None
        try:
            result = verify_audit(path, key=key, anchors=AuditAnchors(database) if database else None,
                                  expect=expect, allow_legacy=allow_legacy)
        finally:
            if database is not None:
                database.close()
        source = "audit.key" if settings.key is not None else f"key file {settings.key_file or default_key_file(path)}"
        done = [f"hmac-sha256 ({result.keyed_records} records, key id {result.key_id} from {source})"
                if key is not None else f"hmac: no key ({source} does not exist)"]
        done.append(f"head file (seq {result.head_seq})" if result.head_seq is not None else "head file")
        if database is not None:
            last = f", latest {result.last_anchor.short()}" if result.last_anchor else ""
            done.append(f"anchors: {result.anchors_checked} ({_mask(url)}{last})")
        else:
            done.append("anchors from the database: not checked (no execution database; pass --db)")
        if expect:
            done.append(f"--anchor: {len(expect)} given")
        if result.ok:
            tail = " (torn last line ignored: a write was interrupted)" if result.torn_tail else ""
            click.echo(f"ok: {result.records} records, chain intact{tail}; last hash {result.last_hash[:16]}…")
            click.echo("checked: " + "; ".join(done))
            for warning in result.warnings:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
            return
        label = "UNVERIFIABLE" if result.error and result.error.startswith("unkeyed (legacy)") else "TAMPERED"
        click.secho(f"{label}: {result.error}", fg="red", err=True)
        click.echo("checked: " + "; ".join(done), err=True)
        # click's Exit is swallowed in non-standalone mode (thunes.cli.main); a plain SystemExit is not.
        raise SystemExit(1)

    audit_group = root.commands.get("audit")
    if isinstance(audit_group, click.Group):
        audit_group.add_command(verify)

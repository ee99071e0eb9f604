"""``thunes risk ...`` and ``thunes audit verify``: thin commands over :mod:`thunes.services.risk` and
:mod:`thunes.services.audit` (the operator's handles on the execution safety core).

The kill-switch and reduce-only mode live in ``<trader.state_dir>/<mode>/risk_state.json``, the file every
trader of that mode reads at start and watches while it runs, so a change here reaches a trader running
in another process at its next decision, and every later run. Every change is written (and fsynced) to
the audit trail at settings ``audit.path`` with the operator's name and reason *before* it is saved; the
commands refuse to run when that trail is not a real file (``/dev/null``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["register"]


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


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
        """Risk manager: status, kill-switch, reduce-only mode, order journal.

        \b
        Example:
          thunes risk status
          thunes risk kill-switch on --reason "exchange incident" --operator alice
        """

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
        from thunes.services.risk import risk_status

        st = risk_status(app.settings, mode=mode, state_dir=state_dir, db=db)
        if as_json:
            click.echo(json.dumps(st.to_json(), indent=2))
            return
        snap, limits, now = st.snapshot, st.limits, st.now_ms
        colour = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}[str(snap.mode)]
        click.echo(f"mode            {click.style(str(snap.mode), fg=colour, bold=True)}   (state {st.state_dir})")
        if snap.kill_switch:
            click.echo(f"kill-switch     ON since {_iso(snap.kill_since_ms)} by {snap.kill_operator}: {snap.kill_reason}")
        else:
            click.echo("kill-switch     off")
        click.echo(f"reduce-only     {'on' if snap.reduce_only else 'off'}")
        click.echo(f"daily PnL       {snap.daily_pnl} (realised {snap.realised_today}) / limit -{limits.max_daily_loss}"
                   f"   on {st.day} ({st.day_rule})")
        click.echo(f"limits          max positions {limits.max_positions}, loss per trade {limits.max_loss_per_trade}, "
                   f"position {limits.max_position_quote}, cool-down {limits.cool_down_minutes} min")
        click.echo(f"cool-down until {_iso(snap.cool_down_until_ms) if snap.cool_down_until_ms > now else '-'}")
        if st.journal is not None:
            click.echo(f"journal         {st.journal}")
        click.echo(f"positions       {len(st.positions)}"
                   + ("" if st.journal is not None else "   (no execution database yet)"))
        for p in st.positions:
            click.echo(f"  {p.symbol:<12} qty {p.qty}  avg {p.avg_price}  cost {p.cost}")
        click.echo(f"open orders     {len(st.open_orders)}")
        for e in st.open_orders:
            click.echo(f"  {e.client_order_id}  {e.symbol} {e.side} {e.qty} {e.status}")

    @risk.command("orders")
    @_state_options
    @click.option("--db", default=None, metavar="URL",
                  help="Execution database (default: the latest run's, else <state-dir>/execution.sqlite).")
    @click.option("--all", "show_all", is_flag=True, help="Every journaled order, not only the unfinished ones.")
    @click.option("--limit", default=50, show_default=True, help="Show at most this many (newest last).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    @pass_app
    def orders(app: Any, mode: str | None, state_dir: str | None, db: str | None, show_all: bool,
               limit: int, as_json: bool) -> None:
        """List the order journal: unfinished orders (PENDING, SENT, NEW, PARTIALLY_FILLED) or --all.

        A PENDING or SENT order is one whose outcome is not known yet; the trader resolves it at its
        next start or reconciliation, by client order id.

        \b
        Example:
          thunes risk orders
          thunes risk orders --all --limit 20
        """
        from thunes.services.risk import list_orders

        listed = list_orders(app.settings, mode=mode, state_dir=state_dir, db=db, show_all=show_all, limit=limit)
        if as_json:
            click.echo(json.dumps({"state_dir": str(listed.state_dir), "total": listed.total, "orders": [
                {"client_order_id": e.client_order_id, "symbol": e.symbol, "side": str(e.side), "status": str(e.status),
                 "qty": str(e.qty), "filled_qty": str(e.filled_qty), "cum_quote": str(e.cum_quote),
                 "created_ms": e.created_ms, "error": e.error} for e in listed.entries]}, indent=2))
            return
        if not listed.has_db:
            click.echo(f"no execution database in {listed.state_dir}")
            return
        shown = listed.entries
        click.echo(f"{listed.total} order(s){'' if show_all else ' not finished'}"
                   + (f", showing the last {len(shown)}" if len(shown) < listed.total else ""))
        for e in shown:
            avg = e.avg_price
            click.echo(f"{_iso(e.created_ms)}  {e.client_order_id:<36} {e.symbol:<10} {e.side!s:<4} "
                       f"{e.status!s:<16} qty {e.qty} filled {e.filled_qty}"
                       + (f" @ {avg:.8f}" if avg is not None else "") + (f"  [{e.error}]" if e.error else ""))

    def _switch(kind: str):  # noqa: ANN202
        @_state_options
        @click.argument("state", type=click.Choice(["on", "off"]))
        @click.option("--reason", required=True, help="Why (written to the audit trail).")
        @click.option("--operator", required=True, help="Who (written to the audit trail).")
        @click.option("--db", default=None, metavar="URL",
                      help="Execution database (default: the latest run's, else <state-dir>/execution.sqlite).")
        @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
        @pass_app
        def command(app: Any, state: str, reason: str, operator: str, mode: str | None,
                    state_dir: str | None, db: str | None, as_json: bool) -> None:
            from thunes.services.risk import set_kill_switch, set_reduce_only

            switch = set_kill_switch if kind == "kill" else set_reduce_only
            done = switch(app.settings, state == "on", reason=reason, operator=operator, mode=mode,
                          state_dir=state_dir, db=db)
            if as_json:
                click.echo(json.dumps({**done.snapshot.to_json(), "state_path": str(done.state_path),
                                       "audit_path": str(done.audit_path)}, indent=2))
                return
            click.echo(f"{'kill-switch' if kind == 'kill' else 'reduce-only'} {state}; mode {done.snapshot.mode} "
                       f"(state {done.state_path}, audited in {done.audit_path})")

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
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    @pass_app
    def verify(app: Any, file: str | None, mode: str | None, state_dir: str | None, db: str | None,
               expect: tuple[str, ...], allow_legacy: bool, as_json: bool) -> None:
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
        from thunes.services.audit import verify_trail

        checked = verify_trail(app.settings, path=file, mode=mode, state_dir=state_dir, db=db, expect=expect,
                               allow_legacy=allow_legacy)
        result, done = checked.result, checked.checks
        if as_json:
            click.echo(json.dumps({"verdict": checked.verdict, "ok": result.ok, "records": result.records,
                                   "error": result.error, "line": result.line, "torn_tail": result.torn_tail,
                                   "last_hash": result.last_hash, "checks": list(done),
                                   "warnings": list(result.warnings)}, indent=2))
            if not result.ok:
                raise SystemExit(1)
            return
        if result.ok:
            tail = " (torn last line ignored: a write was interrupted)" if result.torn_tail else ""
            click.echo(f"ok: {result.records} records, chain intact{tail}; last hash {result.last_hash[:16]}…")
            click.echo("checked: " + "; ".join(done))
            for warning in result.warnings:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
            return
        click.secho(f"{checked.verdict}: {result.error}", fg="red", err=True)
        click.echo("checked: " + "; ".join(done), err=True)
        # click's Exit is swallowed in non-standalone mode (thunes.cli.main); a plain SystemExit is not.
        raise SystemExit(1)

    audit_group = root.commands.get("audit")
    if isinstance(audit_group, click.Group):
        audit_group.add_command(verify)

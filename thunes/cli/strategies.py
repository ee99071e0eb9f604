"""``thunes strategies list|new``: the strategies a command's ``--strategy`` accepts, and a template to
start a new one. Resolution lives in :mod:`thunes.strategies.loader` (one resolver for every command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _folder(app: Any, folder: str | None) -> Path:
    return Path(folder) if folder else Path(app.settings.trader.strategies_dir)


def _describe(cls: Any) -> list[dict[str, Any]]:
    return [{"name": pname, "type": p.type.__name__, "default": p.default, "low": p.low, "high": p.high,
             "choices": list(p.choices) if p.choices else None, "doc": p.doc}
            for pname, p in cls.param_space().items()]


@click.group("strategies")
def strategies_group() -> None:
    """Strategies available to backtest, optimise and trade: built-in ones and yours.

    `--strategy` on every command accepts a built-in name, a strategy of your strategies folder
    (trader.strategies_dir, default ./strategies) by name, module:Class, or path/file.py:Class.

    \b
    Examples:
      thunes strategies list
      thunes strategies new breakout
    """


@strategies_group.command("list")
@click.option("--folder", default=None, type=click.Path(file_okay=False),
              help="Your strategies folder (default: settings trader.strategies_dir).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_cmd(app: Any, folder: str | None, as_json: bool) -> None:
    """List strategies with their parameters (type, default, range): built-in ones, then your folder's.

    \b
    Examples:
      thunes strategies list
      thunes strategies list --json
    """
    from thunes.strategies import get_strategy, list_strategies
    from thunes.strategies.loader import user_strategies

    rows = [{"name": n, "source": "built-in", "strategy": n, "params": _describe(get_strategy(n))}
            for n in list_strategies()]
    rows += [{"name": u.name, "source": str(_folder(app, folder)), "strategy": u.spec, "params": _describe(u.cls)}
             for u in user_strategies(_folder(app, folder))]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        where = "" if row["source"] == "built-in" else f"  ({row['strategy']})"
        click.echo(f"{row['name']}{where}")
        for p in row["params"]:
            rng = f" [{p['low']}, {p['high']}]" if p["low"] is not None or p["high"] is not None else ""
            choices = f" {p['choices']}" if p["choices"] else ""
            click.echo(f"  {p['name']:<16} {p['type']:<6} default={p['default']!r}{rng}{choices}  {p['doc']}")


@strategies_group.command("new")
@click.argument("name")
@click.option("--folder", default=None, type=click.Path(file_okay=False),
              help="Where to write NAME.py (default: settings trader.strategies_dir).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_obj
def new_cmd(app: Any, name: str, folder: str | None, force: bool) -> None:
    """Write a documented strategy template to STRATEGIES_DIR/NAME.py that runs as it is.

    The template is causal (it passes `thunes audit lookahead`) and shows parameters with search
    ranges, a parameter check, the warm-up and vectorised signals; edit it from there.

    \b
    Example:
      thunes strategies new breakout && thunes audit lookahead breakout --sample
    """
    from thunes.strategies.template import class_name, write_template

    path = write_template(name, _folder(app, folder), overwrite=force)
    click.echo(f"wrote {path} (class {class_name(name)}); next:")
    click.echo(f"  thunes audit lookahead {name} --sample")
    click.echo(f"  thunes plot --strategy {name} --sample")


def register(root: click.Group) -> None:
    # Replaces the older `strategies` group of thunes.cli.backtest (registered before this module).
    root.add_command(strategies_group)

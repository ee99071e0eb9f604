"""``thunes config show|check``."""

from __future__ import annotations

import json
import sys

import click

from thunes.config import load_settings
from thunes.core.errors import ConfigError
from thunes.core.redact import redact_text

__all__ = ["register"]


@click.group("config")
def config_group() -> None:
    """Show and validate settings.

    \b
    Example:
      thunes config check thunes.toml
    """


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(app, as_json: bool) -> None:  # noqa: ANN001
    """Print the effective settings, the source of each value, secrets masked.

    \b
    Examples:
      thunes config show
      thunes --config thunes.toml --set risk.max_positions=2 config show --json
    """
    rows = app.loaded.show()
    if as_json:
        click.echo(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2))
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value:<40}  [{source}]")


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.pass_obj
def check(app, file: str | None) -> None:  # noqa: ANN001
    """Validate a config FILE (default: --config) with the environment; list every problem.

    \b
    Example:
      thunes config check thunes.toml
    """
    try:
        load_settings(file or app.config_file, overrides=app.overrides)
    except ConfigError as exc:
        click.secho(redact_text(str(exc)), fg="red", err=True)
        sys.exit(1)
    click.echo(f"ok: {file or app.config_file or 'defaults'} is valid")


def register(root: click.Group) -> None:
    root.add_command(config_group)

"""The ``thunes`` command. Thin: parses arguments, loads settings, calls services, prints.

Each command group lives in its own module under :mod:`thunes.cli` and exposes ``register(root)``;
groups shared by several layers (``audit``) are created here so each module can add commands to them.

Errors reach the user as one ``error: ...`` line on stderr (a settings error with several problems lists
them below it), with secrets masked (:func:`thunes.core.redact.redact_text`), and a non-zero exit. A module
of an optional extra that is not installed names the extra to install (:mod:`thunes.core.extras`);
Ctrl-C stops with exit status 130 after the command's own clean-up.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from thunes import __version__
from thunes.config import LoadedSettings, is_secret_key, load_settings, parse_override
from thunes.core.errors import ConfigError, ThunesError
from thunes.core.extras import missing_extra_message
from thunes.core.redact import MASK, redact_text
from thunes.logs import setup_logging

_log = logging.getLogger("thunes.cli")

__all__ = ["AppContext", "main", "pass_app", "root"]

# Modules that contribute commands, in help order.
_COMMAND_MODULES = (
    "config", "data", "exchange", "features", "backtest", "strategies", "plot", "optimize", "ml", "execution",
    "trader", "bot", "telegram", "stream", "api",
)


class AppContext:
    """Lazily loaded settings shared by every command."""

    def __init__(self, config_file: str | None, overrides: dict[str, Any], command: str = "thunes") -> None:
        self.config_file = config_file
        self.overrides = overrides
        self.command = command
        self._loaded: LoadedSettings | None = None

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            loaded = load_settings(self.config_file, overrides=self.overrides)
            # Every command that reads settings logs: JSON lines to logs/<command>.jsonl (rotating),
            # warnings and errors on the console; secrets are redacted by the handlers.
            setup_logging(loaded.settings.logging, component=self.command)
            self._loaded = loaded
            _log.info("command %s", " ".join(_safe_argv(sys.argv[1:])) or self.command,
                      extra={"fields": {"command": self.command, "settings_file": self.config_file}})
        return self._loaded

    @property
    def settings(self):  # noqa: ANN201 - Settings
        return self.loaded.settings


pass_app = click.make_pass_decorator(AppContext)


def _safe_argv(argv: list[str]) -> list[str]:
    """The command line with the values of secret ``--set`` overrides (by the setting's type) masked."""
    out, after_set = [], False
    for arg in argv:
        if after_set or arg.startswith("--set="):
            prefix = "--set=" if arg.startswith("--set=") else ""
            key, sep, _value = arg[len(prefix):].partition("=")
            if sep and is_secret_key(key.strip()):
                arg = f"{prefix}{key}={MASK}"
        after_set = arg == "--set"
        out.append(redact_text(arg))
    return out


def _error_line(exc: BaseException) -> str:
    """``exc`` as the text after ``error: ``: one line, secrets masked. A settings error keeps its list of
    problems (one per line) when there are several; a single problem joins the first line."""
    if isinstance(exc, ConfigError) and exc.problems:
        head = str(exc).split("\n", 1)[0]
        if len(exc.problems) == 1:
            return redact_text(f"{head}: {exc.problems[0]}")
        return redact_text(str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return redact_text(" ".join(part.strip() for part in text.splitlines() if part.strip()))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="thunes")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="THUNES_CONFIG",
              help="Config file (TOML or JSON). Default: $THUNES_CONFIG, else built-in defaults.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one setting (highest precedence); repeatable, e.g. --set risk.max_positions=2.")
@click.pass_context
def root(ctx: click.Context, config_file: str | None, overrides: tuple[str, ...]) -> None:
    """THUNES: research, backtest, optimise, train, paper-trade and go live, safety first.

    Settings come from defaults < config file < .env < THUNES_* environment < --set flags;
    `thunes config show` prints the effective values and where each came from.

    \b
    Examples:
      thunes data import --sample BTC/USDT --timeframe 1h
      thunes backtest --strategy sma_cross --sample
      thunes --set risk.max_positions=2 config show
    """
    ctx.obj = AppContext(config_file, dict(parse_override(o) for o in overrides),
                         command=ctx.invoked_subcommand or "thunes")


@root.group()
def audit() -> None:
    """Audits: look-ahead and leakage checks, audit-trail verification.

    \b
    Example:
      thunes audit lookahead sma_cross --sample
    """


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"thunes.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"thunes.cli.{name}":
                continue  # that layer's commands are not part of this build
            raise
        module.register(root)


_register_all()


def main(argv: list[str] | None = None) -> None:
    try:
        root.main(args=argv, prog_name="thunes", standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C inside a command into Abort (after the command's own finally blocks ran)
        click.echo("interrupted" if isinstance(exc.__cause__, KeyboardInterrupt) else "aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.message = redact_text(exc.message)  # a usage error may quote a URL the user typed
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ThunesError as exc:
        _log.info("command failed: %s: %s", type(exc).__name__, exc)
        click.secho(f"error: {_error_line(exc)}", fg="red", err=True)
        sys.exit(2)
    except OSError as exc:
        # A file or folder the environment got wrong (unwritable, a file where a folder goes, disk full):
        # say which, in one line; the traceback goes to the log file for whoever debugs it.
        _log.info("command failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        click.secho(f"error: {_error_line(exc)}", fg="red", err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        # An optional extra (ml, api, telegram, stream) that is not installed: say which one to install.
        # Any other missing module is a broken install or a bug and keeps its traceback.
        message = missing_extra_message(exc)
        if message is None:
            raise
        _log.info("command failed: %s", exc)
        click.secho(f"error: {message}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

"""``thunes api``: serve the REST API, manage its users and API tokens. Thin: parse, call, print.

Settings come from ``THUNES_API__*`` (``SECRET``, ``HOST``, ``PORT``, ``USERS_FILE``, ``STATE_DIR``,
``CORS_ORIGINS``, ...) until the ``api`` section joins the settings file; flags win. See docs/api.md.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

import click

from thunes.cli import pass_app

__all__ = ["api_group", "register"]


def _need_extra() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "jwt") if importlib.util.find_spec(m) is None]
    if missing:
        from thunes.core.errors import ConfigError

        raise ConfigError(f"the API needs the api extra ({', '.join(missing)} missing): pip install -e '.[api]'")


def _api_settings(app: Any, **overrides: Any) -> Any:
    from thunes.api.settings import load_api_settings

    _need_extra()
    return load_api_settings(app.settings, **overrides)


@click.group("api")
def api_group() -> None:
    """The REST API (watch and steer a bot from a browser or a phone): serve it, manage users and tokens.

    \b
    Example:
      thunes api user add alice --role trader
      thunes api serve
    """


@api_group.command("serve")
@click.option("--host", default=None, help="Listen address (default 127.0.0.1; others need THUNES_API__SECRET).")
@click.option("--port", default=None, type=int, help="Port (default 8080).")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="The bot's state folder (default: the last `thunes bot run`).")
@pass_app
def serve_cmd(app: Any, host: str | None, port: int | None, state_dir: str | None) -> None:
    """Serve the API until Ctrl-C. It steers the bot running on --state-dir (and can start one).

    \b
    Examples:
      thunes api user add alice --role trader        # once: a user to log in with
      thunes api serve                               # http://127.0.0.1:8080/api/v1/docs
      THUNES_API__SECRET=... thunes api serve --host 0.0.0.0 --port 8443   # behind a TLS proxy
    """
    from thunes.api import ApiContext, build_server

    api = _api_settings(app, host=host, port=port, state_dir=state_dir)
    ctx = ApiContext(app.settings, api)
    server = build_server(ctx)
    users = ctx.tokens.users.users() if ctx.tokens else {}
    click.echo(f"THUNES dashboard on http://{api.host}:{api.port}/ui/, API on /api/v1 (docs: /api/v1/docs); bot folder "
               f"{ctx.state_dir}; {len(users)} user(s) in {api.users_file}", err=True)
    if ctx.ephemeral_secret:
        click.echo("no THUNES_API__SECRET: tokens are signed with a random key and end with this process; "
                   "API tokens need a configured secret", err=True)
    if not users:
        click.echo("no user yet: add one with `thunes api user add NAME --role trader`", err=True)
    server.run()


@api_group.command("secret")
def secret_cmd() -> None:
    """Print a fresh random secret for THUNES_API__SECRET.

    \b
    Example:
      export THUNES_API__SECRET=$(thunes api secret)
    """
    click.echo(secrets.token_urlsafe(48))


@api_group.group("user")
def user_group() -> None:
    """Users who log in with a password (POST /api/v1/auth/login).

    \b
    Example:
      thunes api user list
    """


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["read", "trader"]), required=True,
              help="read: every GET; trader: also start/stop/pause/force-exit/kill-switch and tasks.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@pass_app
def user_add_cmd(app: Any, name: str, role: str, password_stdin: bool) -> None:
    """Add a user (or change an existing user's password and role).

    \b
    Example:
      thunes api user add alice --role trader
    """
    from thunes.api.auth import Role, UserStore

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.UsageError("the password needs at least 8 characters")
    api = _api_settings(app)
    UserStore(api.users_file).set_user(name, password, Role(role))
    click.echo(f"user {name} ({role}) saved in {api.users_file}")


@user_group.command("remove")
@click.argument("name")
@pass_app
def user_remove_cmd(app: Any, name: str) -> None:
    """Remove a user; their access tokens stop working at once.

    \b
    Example:
      thunes api user remove alice
    """
    from thunes.api.auth import UserStore

    api = _api_settings(app)
    found = UserStore(api.users_file).remove_user(name)
    click.echo(f"user {name} removed" if found else f"no user {name} in {api.users_file}")


@user_group.command("list")
@pass_app
def user_list_cmd(app: Any) -> None:
    """List the users and their roles.

    \b
    Example:
      thunes api user list
    """
    from thunes.api.auth import UserStore

    api = _api_settings(app)
    users = UserStore(api.users_file).users()
    for name, role in sorted(users.items()):
        click.echo(f"  {name:20s} {role}")
    if not users:
        click.echo(f"no user in {api.users_file}")


@api_group.group("token")
def token_group() -> None:
    """Long-lived API tokens for scripts (revocable).

    \b
    Example:
      thunes api token create --name grafana --role read
    """


@token_group.command("create")
@click.option("--name", required=True, help="Who or what uses it (shown in the audit of its calls).")
@click.option("--role", type=click.Choice(["read", "trader"]), required=True)
@pass_app
def token_create_cmd(app: Any, name: str, role: str) -> None:
    """Create an API token and print it once (it is not stored, only its id).

    \b
    Example:
      thunes api token create --name ci --role read
    """
    from thunes.api import ApiContext
    from thunes.api.auth import Role

    api = _api_settings(app)
    if api.secret is None:
        raise click.UsageError("API tokens need a configured secret (THUNES_API__SECRET; `thunes api secret` "
                               "prints one): a random per-process key would void them at the next start")
    ctx = ApiContext(app.settings, api)
    assert ctx.tokens is not None
    token_id, token = ctx.tokens.api_token(name, Role(role))
    click.echo(f"token id {token_id} ({name}, {role}); revoke with `thunes api token revoke {token_id}`", err=True)
    click.echo(token)


@token_group.command("list")
@pass_app
def token_list_cmd(app: Any) -> None:
    """List the API tokens (ids, names, roles, creation time; never the tokens).

    \b
    Example:
      thunes api token list
    """
    import time

    from thunes.api.auth import UserStore

    api = _api_settings(app)
    tokens = UserStore(api.users_file).tokens()
    for tid, info in tokens.items():
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.get("created_ms", 0) / 1000))
        click.echo(f"  {tid}  {info.get('name', ''):20s} {info.get('role', '')}  created {when}")
    if not tokens:
        click.echo("no API token")


@token_group.command("revoke")
@click.argument("token_id")
@pass_app
def token_revoke_cmd(app: Any, token_id: str) -> None:
    """Revoke the API token TOKEN_ID: calls with it are refused at once.

    \b
    Example:
      thunes api token revoke 3f2a9c1e
    """
    from thunes.api.auth import UserStore

    api = _api_settings(app)
    found = UserStore(api.users_file).revoke_token(token_id)
    click.echo(f"token {token_id} revoked" if found else f"no token {token_id}")


def register(root: click.Group) -> None:
    root.add_command(api_group)

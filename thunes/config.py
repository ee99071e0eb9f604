"""One typed settings tree for the whole system, loaded in layers.

Precedence, lowest first: built-in defaults < config file (TOML or JSON) < ``.env`` file < environment
variables (``THUNES_<SECTION>__<FIELD>``) < explicit overrides (CLI flags, ``--set section.field=value``).

String values in a config file may hold ``${ENV:NAME}`` placeholders; a missing variable is a
:class:`~thunes.core.errors.ConfigError` naming it. Secrets are ``SecretStr`` and are masked wherever
settings are shown. Each part of the system receives only its own section (``RiskManager(settings.risk)``).

Secrets are recognised by type, not by name: a ``SecretStr`` field (API key and secret, Telegram token)
is never shown, never echoed in a validation error and never part of :func:`settings_hash`; any other
string is shown with URL passwords masked (:func:`thunes.core.redact.redact_text`). API credentials
must be printable ASCII (they travel in HTTP headers). Folder settings (``FolderPath``) that name an
existing file, or sit below one, are refused at load; :func:`masked_settings` is the JSON-ready tree to
print, log or audit.

:func:`load_settings` returns the settings together with the source of every leaf value, which is what
``thunes config show`` prints. :func:`write_config_file` writes atomically (temp file + rename) and keeps
one backup (``<file>.bak``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from dotenv import dotenv_values
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from thunes.core.errors import ConfigError
from thunes.core.redact import MASK, is_secret_name, redact_text

__all__ = [
    "ENV_PREFIX",
    "ApiCredential",
    "ApiSettings",
    "AuditSettings",
    "BacktestSettings",
    "DataSettings",
    "ExchangeSettings",
    "FolderPath",
    "LoadedSettings",
    "LoggingSettings",
    "MLSettings",
    "OptimizeSettings",
    "RiskSettings",
    "Settings",
    "TelegramSettings",
    "TraderSettings",
    "is_secret_key",
    "load_settings",
    "masked_settings",
    "settings_hash",
    "write_config_file",
]

ENV_PREFIX = "THUNES_"
_PLACEHOLDER = re.compile(r"\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)\}")
# A settings tree is section.field (two levels); a file nested far deeper is a mistake, and nesting in
# the thousands would blow the parser's and the validator's recursion limits.
_MAX_CONFIG_DEPTH = 32


def _printable_ascii(value: SecretStr) -> SecretStr:
    # Exchange keys travel in HTTP headers (latin-1 at best, ASCII in practice) and the Telegram token in
    # a URL path: a pasted non-ASCII character or stray space would fail on the first request, far from
    # the config. The message names the position, never the value.
    for i, ch in enumerate(value.get_secret_value()):
        if not "!" <= ch <= "~":
            kind = "a space" if ch == " " else "a control character" if ord(ch) < 32 or ord(ch) == 127 else (
                "a non-ASCII character")
            raise ValueError(f"must be printable ASCII without spaces (it is sent in HTTP requests); "
                             f"character {i + 1} is {kind}")
    return value


def _folder(value: Path) -> Path:
    # The folder may not exist yet (commands create it); what can be told now is a file in the way.
    for candidate in (value, *value.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == value else f"is below {candidate}, which is a file"
                raise ValueError(f"must be a folder, but {value} {where}")
            break
    return value


ApiCredential = Annotated[SecretStr, AfterValidator(_printable_ascii)]
"""A secret sent to a remote API: masked everywhere, and printable ASCII."""

FolderPath = Annotated[Path, AfterValidator(_folder)]
"""A folder setting: refused at load when a file stands where the folder (or one of its parents) goes."""


def _base_url(value: str) -> str:
    from thunes.core.urls import rest_root

    rest_root(value)  # ValueError (one line, with the expected form) when it is not the exchange host
    return value.strip()


ExchangeBaseUrl = Annotated[str, AfterValidator(_base_url)]
"""The exchange host (``http://127.0.0.1:8765``; ``/api/v3`` accepted): one meaning, :mod:`thunes.core.urls`."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSettings(_Section):
    url: str = Field("sqlite:///data/thunes.sqlite", description="Candle store: sqlite:///PATH or postgresql://...")
    replica_url: str | None = Field(None, description="Optional replica database written in the same order")
    cache_dir: FolderPath = Field(Path("data/cache"), description="Columnar read cache (Parquet) for research loads")
    sample_dir: Path | None = Field(None, description="Folder with sample CSVs; default: ../shared/data if present")


class ExchangeSettings(_Section):
    id: str = Field("binance", description="ccxt exchange id")
    mode: Literal["local", "testnet", "live"] = Field("local", description="local exchange, Spot testnet or live")
    base_url: ExchangeBaseUrl | None = Field(None, description="Exchange host, e.g. http://127.0.0.1:8765 (a trailing /api/v3 "
                                 "is accepted); the same meaning for data download, paper, testnet and live "
                                 "(None: the mode's)")
    ws_url: str | None = Field(None, description="Websocket base for market streams")
    api_key: ApiCredential | None = None
    api_secret: ApiCredential | None = None
    timeout_s: float = Field(10.0, gt=0)
    local_host: str = "127.0.0.1"
    local_port: int = Field(8765, ge=0, le=65535)


class RiskSettings(_Section):
    max_daily_loss: Decimal = Field(Decimal("50"), gt=0, description="Quote currency; trips the kill-switch")
    max_loss_per_trade: Decimal = Field(Decimal("10"), gt=0, description="Quote lost at the stop, at most")
    max_positions: int = Field(3, ge=1)
    max_position_quote: Decimal = Field(Decimal("100"), gt=0, description="Largest position size in quote")
    cool_down_minutes: int = Field(30, ge=0)
    default_stop_pct: Decimal = Field(Decimal("0.02"), gt=0, lt=1, description="Stop distance when none is given")


class BacktestSettings(_Section):
    initial_cash: float = Field(10_000.0, gt=0)
    taker_fee_bps: float = Field(10.0, ge=0)
    maker_fee_bps: float = Field(10.0, ge=0)
    slippage_bps: float = Field(5.0, ge=0)
    artifacts_dir: FolderPath = Path("artifacts/backtest")


class TraderSettings(_Section):
    strategy: str = "sma_cross"
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    quote_per_trade: Decimal = Field(Decimal("100"), gt=0)
    reconcile_minutes: float = Field(5.0, gt=0)
    state_dir: FolderPath = Path("data/trader")
    ledger_path: Path = Path("artifacts/ledger.csv")
    strategies_dir: FolderPath = Field(Path("strategies"), description="User strategies: `--strategy NAME` looks here "
                                 "too; `thunes strategies new` writes here")


class OptimizeSettings(_Section):
    storage: str = "sqlite:///artifacts/optuna/studies.sqlite"
    n_trials: int = Field(25, ge=1)
    deploy_min_sharpe: float = 1.5
    deploy_min_dsr: float = 0.95
    decay_min_sharpe: float = 1.0
    artifacts_dir: FolderPath = Path("artifacts/optuna")


class MLSettings(_Section):
    artifacts_dir: FolderPath = Path("artifacts/models")
    seq_len: int = Field(32, ge=1)
    horizon: int = Field(10, ge=1)
    hidden: int = Field(64, ge=1)
    num_layers: int = Field(2, ge=1)
    epochs: int = Field(20, ge=1)
    seed: int = 42


class AuditSettings(_Section):
    """The audit trail (see :mod:`thunes.execution.audit`).

    ``key``: the HMAC key of the chain (env ``THUNES_AUDIT__KEY``, at least 16 characters; keep it in a
    secret store). Unset: ``key_file`` (default ``<folder of path>/keys/audit.key``, created on first use,
    mode 0600; refused inside the audit file's own folder). ``anchor_every`` / ``anchor_seconds``: how often
    a running trail copies its head to the execution database (besides at close).
    """

    path: Path = Path("data/audit.jsonl")
    fsync: Literal["always", "batch", "never"] = "always"
    key: SecretStr | None = None
    key_file: Path | None = None
    anchor_every: int = Field(1000, ge=1)
    anchor_seconds: float = Field(60.0, gt=0)


class LoggingSettings(_Section):
    dir: FolderPath = Path("logs")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_file: bool = True
    max_bytes: int = Field(10_000_000, ge=10_000)
    backups: int = Field(5, ge=0)


MIN_API_SECRET = 32


class ApiSettings(_Section):
    """The REST API (docs/api.md): loopback and no default secret, CORS closed, login rate-limited."""


    host: str = Field("127.0.0.1", description="Listen address; anything but loopback needs a secret")
    port: int = Field(8080, ge=0, le=65535)
    secret: SecretStr | None = Field(None, description=f"JWT signing key, at least {MIN_API_SECRET} characters; "
                                                       "`thunes api secret` prints a fresh one")
    users_file: Path = Field(Path("data/api_users.json"), description="Users and API tokens (mode 0600)")
    state_dir: Path | None = Field(None, description="The bot's state folder (default: as `thunes bot status`)")
    access_ttl_s: int = Field(900, ge=30, le=86_400)
    refresh_ttl_s: int = Field(7 * 86_400, ge=60, le=90 * 86_400)
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed; none by default")
    login_attempts: int = Field(5, ge=1, description="Login attempts per client per window")
    login_window_s: float = Field(60.0, gt=0)
    task_workers: int = Field(1, ge=1, le=8, description="Background tasks run at once")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < MIN_API_SECRET:
            raise ValueError(f"must be at least {MIN_API_SECRET} characters (try `thunes api secret`)")
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, v: list[str]) -> list[str]:
        if "*" in v:
            raise ValueError("'*' would let any web page drive the bot with a user's token; list the origins")
        return v



class TelegramSettings(_Section):
    token: ApiCredential | None = None
    chat_id: str | None = None
    base_url: str = "https://api.telegram.org"


class Settings(BaseSettings):
    """The whole tree. Build it with :func:`load_settings`, not directly, to get the layering."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    data: DataSettings = DataSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    risk: RiskSettings = RiskSettings()
    backtest: BacktestSettings = BacktestSettings()
    trader: TraderSettings = TraderSettings()
    optimize: OptimizeSettings = OptimizeSettings()
    ml: MLSettings = MLSettings()
    audit: AuditSettings = AuditSettings()
    logging: LoggingSettings = LoggingSettings()
    telegram: TelegramSettings = TelegramSettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layering is done explicitly by load_settings (so that sources can be reported); the model
        # itself only validates what it is given.
        return (init_settings,)


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]  # "risk.max_positions" -> "default" | "file:PATH" | ".env" | "env" | "cli"

    def show(self) -> list[tuple[str, str, str]]:
        """(key, masked value, source) for every leaf, secrets masked."""
        rows = []
        for key, value in _flatten(self.settings.model_dump(mode="python")).items():
            rows.append((key, _display(value), self.sources.get(key, "default")))
        return rows


def _display(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if value is None:
        return "null"
    return redact_text(str(value))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    # Iterative, in insertion order: an environment variable with thousands of ``__`` parts must not hit
    # the recursion limit.
    out: dict[str, Any] = {}
    stack = [(prefix, iter(tree.items()))]
    while stack:
        base, items = stack[-1]
        for key, value in items:
            path = f"{base}{key}"
            if isinstance(value, Mapping):
                stack.append((path + ".", iter(value.items())))
                break
            out[path] = value
        else:
            stack.pop()
    return out


def _too_deep(node: Any) -> bool:
    """Whether containers nest more than ``_MAX_CONFIG_DEPTH`` levels below the top (iteratively)."""
    stack = [(node, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > _MAX_CONFIG_DEPTH:
                return True
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _merge(base: dict[str, Any], layer: Mapping[str, Any], source: str, sources: dict[str, str]) -> None:
    for key, value in _flatten(layer).items():
        _set_path(base, key, value)
        sources[key] = source


def _expand_placeholders(node: Any, where: str, problems: list[str], environ: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand_placeholders(v, f"{where}.{k}" if where else k, problems, environ) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_placeholders(v, f"{where}[{i}]", problems, environ) for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                problems.append(f"{where}: environment variable {name} is not set (placeholder ${{ENV:{name}}})")
                return ""
            return environ[name]

        return _PLACEHOLDER.sub(repl, node)
    return node


def read_config_file(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse a TOML or JSON config file and expand ``${ENV:NAME}`` placeholders."""
    data, problems = _read_config_file(path, environ)
    if problems:
        raise ConfigError(f"config file {path} has unresolved placeholders", problems)
    return data


def _read_config_file(path: Path, environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    environ = os.environ if environ is None else environ
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start + 1})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    too_deep = ConfigError(f"config file {path} nests more than {_MAX_CONFIG_DEPTH} levels deep; "
                           "settings are section.field")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {path}: unknown format {path.suffix!r} (use .toml or .json)")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    except RecursionError:
        raise too_deep from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a table/object")
    if _too_deep(data):
        raise too_deep
    problems: list[str] = []
    data = _expand_placeholders(data, "", problems, environ)
    return data, problems


def _env_layer(environ: Mapping[str, str | None]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if value is None or not name.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if len(parts) < 2:
            continue
        _set_path(tree, ".".join(parts), value)
    return tree


def _has_secret_type(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if get_origin(annotation) in (Annotated, Union) or type(annotation).__name__ == "UnionType":
        return any(_has_secret_type(arg) for arg in get_args(annotation))
    return False


def _is_secret(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """True when ``loc`` (an error location) is, or lies inside, a ``SecretStr`` field of ``model``."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return False
        if _has_secret_type(field.annotation) or any(_has_secret_type(m) for m in field.metadata):
            return True
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return False
        model = field.annotation
    return False


def is_secret_key(dotted: str) -> bool:
    """Whether the setting ``dotted`` (``exchange.api_key``) holds a secret, judged by its type."""
    return _is_secret(Settings, tuple(dotted.split(".")))


def _shown_input(value: Any) -> str:
    # Containers are named, not printed: a section given as a list or a table can hold secrets.
    if isinstance(value, (dict, list, tuple, set)):
        return f" [got a {'table' if isinstance(value, dict) else 'list'}]"
    if isinstance(value, SecretStr):
        return ""
    return f" [got {redact_text(repr(value))}]"


def _format_validation(exc: ValidationError, sources: Mapping[str, str]) -> list[str]:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        src = sources.get(key)
        where = f" (from {src})" if src else ""
        shown = "" if _is_secret(Settings, err["loc"]) else _shown_input(err.get("input"))
        if err["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown setting{where}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}{where}{shown}")
    return problems


def load_settings(
    config_file: str | Path | None = None,
    *,
    env_file: str | Path | None = ".env",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Load the layered settings. ``overrides`` maps dotted keys (``risk.max_positions``) to values.

    The config file defaults to ``$THUNES_CONFIG`` when set. Every problem is collected and raised
    together in one :class:`ConfigError`.
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("THUNES_CONFIG"):
        config_file = environ["THUNES_CONFIG"]
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    if config_file is not None:
        data, problems = _read_config_file(Path(config_file), environ)
        _merge(tree, data, f"file:{config_file}", sources)
    if env_file is not None and Path(env_file).exists():
        _merge(tree, _env_layer(dotenv_values(env_file)), ".env", sources)
    _merge(tree, _env_layer(environ), "env", sources)
    if overrides:
        for key, value in overrides.items():
            _set_path(tree, key, value)
            sources[key] = "cli"
    try:
        settings = Settings(**tree)
    except ValidationError as exc:
        problems += _format_validation(exc, sources)
    if problems:
        raise ConfigError("invalid settings", problems)
    return LoadedSettings(settings, sources)


def parse_override(text: str) -> tuple[str, str]:
    """``"risk.max_positions=3"`` -> ``("risk.max_positions", "3")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        # Echo only what looks like a setting name: the rest may be a pasted secret.
        name = re.match(r"[A-Za-z0-9_.]*", text.strip()).group(0)  # type: ignore[union-attr]
        shown = f" (starting {name!r})" if name else ""
        raise ConfigError(f"override{shown} must look like section.field=value")
    return key.strip(), value.strip()


def write_config_file(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write a config file atomically (temp + fsync + rename), keeping the previous one as ``.bak``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, default=str) + "\n"
    elif path.suffix.lower() == ".toml":
        import tomli_w

        text = tomli_w.dumps(_tomlable(data))
    else:
        raise ConfigError(f"cannot write {path}: use a .toml or .json file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _tomlable(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _tomlable(v) for k, v in node.items() if v is not None}
    if isinstance(node, (Decimal, Path)):
        return str(node)
    if isinstance(node, SecretStr):
        return node.get_secret_value()
    return node


def _public(section: BaseModel | Mapping[str, Any], *, secret: Any) -> dict[str, Any]:
    """JSON-ready tree of ``section``: ``SecretStr`` fields (by type) become ``secret(value)``, strings have
    URL passwords masked. A plain mapping carries no types, so there its secret-looking keys count too."""
    out: dict[str, Any] = {}
    if isinstance(section, BaseModel):
        fields = type(section).model_fields
        items = [(name, getattr(section, name)) for name in fields]
    else:
        fields, items = {}, list(section.items())
    for name, value in items:
        field = fields.get(name)
        typed_secret = field is not None and (_has_secret_type(field.annotation)
                                              or any(_has_secret_type(m) for m in field.metadata))
        if typed_secret or isinstance(value, SecretStr) or (field is None and value not in (None, "")
                                                            and is_secret_name(str(name))
                                                            and not isinstance(value, (BaseModel, Mapping))):
            masked = secret(value)
            if masked is not _DROP:
                out[str(name)] = masked
        elif isinstance(value, (BaseModel, Mapping)):
            out[str(name)] = _public(value, secret=secret)
        elif isinstance(value, str):
            out[str(name)] = redact_text(value)
        elif isinstance(value, (Decimal, Path)):
            out[str(name)] = str(value)
        else:
            out[str(name)] = value
    return out


_DROP = object()


def masked_settings(section: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The settings as a JSON-ready tree that is safe to print, log or write to the audit trail: a set
    secret reads ``***``, an unset one ``None``, and every URL password is masked."""
    def mask(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return MASK if value.get_secret_value() else None
        return None if value in (None, "") else MASK

    return _public(section, secret=mask)


def settings_hash(section: BaseModel | Mapping[str, Any]) -> str:
    """A short, stable hash of settings to store with every result. Secret fields (by type) are left out
    and URL passwords masked, so rotating a key or a password does not change it and the hash reveals
    nothing about either."""
    data = _public(section, secret=lambda _value: _DROP)
    flat = _flatten(data)
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]

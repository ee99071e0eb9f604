"""Find a strategy class by what the user typed: a registered name, ``module:Class``, ``file.py:Class``,
or the name of a strategy in the user's strategies folder (``trader.strategies_dir``, default
``./strategies``, where ``thunes strategies new NAME`` writes its template).

One resolver for every command that takes ``--strategy`` (backtest, sweep, portfolio, optimize, paper,
parity, bot, ``audit lookahead``): :func:`resolve_strategy`. Anything it cannot resolve is one
:class:`~thunes.core.errors.StrategyError` line saying what was tried, never an import traceback.

The folder and the current directory are put on ``sys.path`` while a ``module:Class`` is imported, so
``--strategy my_strategies:Breakout`` works from the project folder, and Optuna's worker processes
(started in the same directory) resolve the same string the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from thunes.core.errors import StrategyError
from thunes.strategies import get_strategy
from thunes.strategies.base import Strategy

__all__ = ["DEFAULT_STRATEGIES_DIR", "UserStrategy", "resolve_strategy", "strategy_spec", "user_strategies"]

DEFAULT_STRATEGIES_DIR = Path("strategies")


@dataclass(frozen=True, slots=True)
class UserStrategy:
    """A strategy class found in the strategies folder, with the spec that resolves it."""

    name: str
    spec: str  # what --strategy accepts, e.g. strategies/breakout.py:Breakout
    cls: type[Strategy]


def resolve_strategy(name: str, *, folder: str | Path | None = None) -> type[Strategy]:
    """The strategy class for ``name``:

    * ``sma_cross``: a registered strategy (``thunes strategies list``);
    * ``package.module:Class``: imported with the current directory and ``folder`` on the path;
    * ``path/to/file.py:Class``: loaded from that file;
    * ``breakout``: a strategy named so in ``folder`` (``strategies/breakout.py`` defining a Strategy
      subclass whose ``name`` is ``breakout``).
    """
    folder = Path(folder) if folder is not None else DEFAULT_STRATEGIES_DIR
    name = name.strip()
    if ":" in name:
        where, _, attr = name.rpartition(":")
        if not where or not attr:
            raise StrategyError(f"strategy {name!r}: expected NAME, module:Class or file.py:Class")
        module = _load_file(Path(where)) if where.endswith(".py") else _import(where, name, folder)
        cls = getattr(module, attr, None)
        if cls is None:
            found = ", ".join(c.__name__ for c in _classes(module)) or "none"
            raise StrategyError(f"strategy {name!r}: {where} has no {attr!r} (Strategy classes there: {found})")
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise StrategyError(f"strategy {name!r}: {attr} is not a thunes.strategies.Strategy subclass")
        return cls
    try:
        return get_strategy(name)
    except StrategyError as exc:
        for user in user_strategies(folder):
            if user.name == name:
                return user.cls
        users = [u.name for u in user_strategies(folder)]
        more = f"; in {folder}/: {', '.join(users)}" if users else ""
        raise StrategyError(f"{exc}{more}; or give module:Class / file.py:Class") from None


def user_strategies(folder: str | Path | None = None) -> list[UserStrategy]:
    """The Strategy subclasses defined in the ``*.py`` files of ``folder`` (files starting with ``_`` are
    skipped), sorted by name. A file that fails to import is a StrategyError naming it."""
    folder = Path(folder) if folder is not None else DEFAULT_STRATEGIES_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_file(path)
        found += [UserStrategy(c.name, f"{path}:{c.__name__}", c) for c in _classes(module)]
    return sorted(found, key=lambda u: u.name)


def _classes(module: ModuleType) -> list[type[Strategy]]:
    """Strategy subclasses defined in ``module`` itself (not the ones it imports)."""
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__]


def _import(module_name: str, spec: str, folder: Path) -> ModuleType:
    added = [p for p in (str(Path.cwd()), str(folder.resolve())) if p not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise StrategyError(f"strategy {spec!r}: no module {module_name!r} in the current directory, "
                                f"{folder}/ or the installed packages") from None
        raise StrategyError(f"strategy {spec!r}: importing {module_name} failed: {exc}") from None
    except SyntaxError as exc:
        raise StrategyError(f"strategy {spec!r}: {exc.filename}:{exc.lineno}: {exc.msg}") from None
    except ImportError as exc:
        raise StrategyError(f"strategy {spec!r}: importing {module_name} failed: {exc}") from None
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise StrategyError(f"strategy file {path} does not exist")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    module_name = f"thunes_user_strategies.{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise StrategyError(f"strategy file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise StrategyError(f"strategy file {path}:{exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the user's module failed at import: name the file and the cause
        del sys.modules[module_name]
        raise StrategyError(f"strategy file {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module


def strategy_spec(name: str, *, folder: str | Path | None = None) -> str:
    """A string :func:`resolve_strategy` resolves the same way from any process started in this
    directory, whatever its settings: a registered name or ``module:Class`` as given, a strategy of the
    folder as ``/absolute/path.py:Class`` (stored in an Optuna study for its worker processes)."""
    cls = resolve_strategy(name, folder=folder)
    if ":" in name:
        where, _, attr = name.rpartition(":")
        return f"{Path(where).resolve()}:{attr}" if where.endswith(".py") else name
    try:
        get_strategy(name)
        return name
    except StrategyError:
        module = sys.modules[cls.__module__]
        return f"{Path(module.__file__ or '').resolve()}:{cls.__name__}"

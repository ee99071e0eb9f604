"""Operations edges around a running bot: alerts and remote control (Telegram). They call services only."""

from __future__ import annotations

__all__ = ["telegram"]

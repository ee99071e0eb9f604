"""The deploy rule: deploy only when the out-of-sample Sharpe and the Deflated Sharpe Ratio pass."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Recommendation", "recommend"]

@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """Deploy or not, and why (each check with its value and threshold)."""

    deploy: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        verdict = "DEPLOY" if self.deploy else "DO NOT DEPLOY"
        return f"{verdict}: " + "; ".join(self.reasons)


def recommend(*, oos_sharpe: float | None, dsr: float | None, min_sharpe: float, min_dsr: float
              ) -> Recommendation:
    """Deploy only when the out-of-sample Sharpe exceeds ``min_sharpe`` and the DSR reaches ``min_dsr``."""
    reasons = []
    ok = True
    if oos_sharpe is None or not math.isfinite(oos_sharpe):
        ok = False
        reasons.append("no out-of-sample Sharpe (run with --walk-forward rolling|anchored)")
    elif oos_sharpe > min_sharpe:
        reasons.append(f"out-of-sample Sharpe {oos_sharpe:.2f} > {min_sharpe:g}")
    else:
        ok = False
        reasons.append(f"out-of-sample Sharpe {oos_sharpe:.2f} <= {min_sharpe:g}")
    if dsr is None or not math.isfinite(dsr):
        ok = False
        reasons.append("no Deflated Sharpe Ratio")
    elif dsr >= min_dsr:
        reasons.append(f"DSR {dsr:.3f} >= {min_dsr:g}")
    else:
        ok = False
        reasons.append(f"DSR {dsr:.3f} < {min_dsr:g}")
    return Recommendation(deploy=ok, reasons=tuple(reasons))

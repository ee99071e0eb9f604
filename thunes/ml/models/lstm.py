"""``LSTM2Head``: one shared LSTM trunk, a return head and a (strictly positive) volatility head.

The two heads share what the trunk learns about the recent window. The return head predicts the forward
log return over ``horizon`` bars; the volatility head predicts its standard deviation, so a prediction
reads as ``return ~ N(mu, sigma^2)``. The loss (:func:`two_head_loss`) is the return MSE plus a weighted
Gaussian negative log-likelihood of the realised return under ``N(mu, sigma^2)``, with ``mu`` detached so
the volatility head learns the size of the return head's error instead of pulling ``mu`` around.

Targets are trained in *scaled* units (divided by the training standard deviation of the return target,
stored in the artifact's ``meta.json`` as ``target_scale``); the predictors multiply it back.

Torch is imported here and only here (plus training/artifacts), so ``thunes.ml`` imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["VOL_FLOOR", "LSTM2Head", "LSTMArch", "two_head_loss"]

# Smallest volatility the head can output (in scaled units): keeps the Gaussian NLL finite.
VOL_FLOOR = 1e-4


@dataclass(frozen=True, slots=True, kw_only=True)
class LSTMArch:
    """The hyper-parameters that fix the shapes of an :class:`LSTM2Head`'s weights."""

    input_size: int
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.0


class LSTM2Head(nn.Module):
    """Shared LSTM trunk → (return head, softplus volatility head). Input ``(batch, seq_len, features)``."""

    def __init__(self, input_size: int, hidden: int = 64, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if input_size < 1 or hidden < 1 or num_layers < 1:
            raise ValueError(f"LSTM2Head needs positive sizes, got input_size={input_size}, hidden={hidden}, "
                             f"num_layers={num_layers}")
        self.arch = LSTMArch(input_size=input_size, hidden=hidden, num_layers=num_layers, dropout=dropout)
        self.lstm = nn.LSTM(
            input_size, hidden, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.ret_head = nn.Linear(hidden, 1)
        self.vol_head = nn.Linear(hidden, 1)

    @classmethod
    def from_arch(cls, arch: LSTMArch) -> LSTM2Head:
        return cls(arch.input_size, arch.hidden, arch.num_layers, arch.dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Explicit zero initial states sized from the input keep the ONNX graph valid for any batch size.
        h0 = x.new_zeros((self.arch.num_layers, x.shape[0], self.arch.hidden))
        out, _ = self.lstm(x, (h0, h0))
        last = out[:, -1, :]
        ret = self.ret_head(last).squeeze(-1)
        vol = F.softplus(self.vol_head(last)).squeeze(-1) + VOL_FLOOR
        return ret, vol


def two_head_loss(
    pred_ret: torch.Tensor, pred_vol: torch.Tensor, target_ret: torch.Tensor, *, vol_weight: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, return_mse, vol_nll)``: MSE on the return plus ``vol_weight`` × Gaussian NLL.

    The NLL is that of the realised return under ``N(mu.detach(), sigma^2)`` (constant term dropped),
    i.e. ``0.5 * (log sigma^2 + (y - mu)^2 / sigma^2)`` averaged over the batch.
    """
    ret_loss = F.mse_loss(pred_ret, target_ret)
    vol_loss = F.gaussian_nll_loss(pred_ret.detach(), target_ret, pred_vol.pow(2), eps=VOL_FLOOR ** 2)
    return ret_loss + vol_weight * vol_loss, ret_loss, vol_loss

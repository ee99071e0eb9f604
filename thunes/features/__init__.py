"""Features: causal indicators (numba kernels) and the named, versioned feature sets built from them.

``indicators`` holds the single indicators (arrays or Series in, the same kind out); ``compute_features``
turns a candle frame into a feature set's columns plus a ``gap_flag``; ``check_prefix_invariance``
proves a function of candles does not look ahead; ``audit_leakage`` looks for targets leaking into a
training set.
"""

from thunes.features import indicators
from thunes.features.feature_set import (
    GAP_COLUMN,
    FeatureBlock,
    FeatureSet,
    compute_features,
    describe_column,
    feature_set_names,
    get_feature_set,
)
from thunes.features.gaps import gap_flags
from thunes.features.leakage import LeakageFinding, LeakageReport, audit_leakage
from thunes.features.lookahead import LookaheadReport, Violation, check_prefix_invariance

__all__ = [
    "GAP_COLUMN",
    "FeatureBlock",
    "FeatureSet",
    "LeakageFinding",
    "LeakageReport",
    "LookaheadReport",
    "Violation",
    "audit_leakage",
    "check_prefix_invariance",
    "compute_features",
    "describe_column",
    "feature_set_names",
    "gap_flags",
    "get_feature_set",
    "indicators",
]

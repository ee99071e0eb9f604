"""Model definitions: ``lstm`` (torch ``LSTM2Head``) and ``xgb`` (XGBoost two-head). Import the submodule you
need; this package itself imports neither torch nor xgboost."""

__all__: list[str] = []

#!/usr/bin/env bash
# The main job, offline, on the embedded defaults (SQLite store, local data).
set -euo pipefail
THUNES=${THUNES:-.venv/bin/thunes}
export THUNES_DATA__URL=${THUNES_DATA__URL:-sqlite:///data/demo.sqlite}
echo "== 1. import sample candles (real data from ../shared/data when present, else synthetic)"
$THUNES data import --sample BTC/USDT --timeframe 1h
echo "== 2. check their quality"
$THUNES data check --symbol BTC/USDT --timeframe 1h || true
echo "== 3. what is stored"
$THUNES data list

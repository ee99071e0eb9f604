#!/usr/bin/env bash
# The main job, offline, on the embedded defaults: data -> quality -> features -> backtest -> sweep ->
# paper trading against the local exchange -> audit verification -> a short multi-pair bot run. Everything
# lands under data/ and artifacts/demo/.
set -euo pipefail
THUNES=${THUNES:-.venv/bin/thunes}
export THUNES_DATA__URL=${THUNES_DATA__URL:-sqlite:///data/demo.sqlite}
OUT=${DEMO_OUT:-artifacts/demo}
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. import sample candles (real BTC/USDT 1h from ../shared/data when present, else a synthetic market)"
$THUNES data import --sample BTC/USDT --timeframe 1h

step "2. check their quality (gaps, duplicates, bad OHLC, flat runs, jumps)"
$THUNES data check --symbol BTC/USDT --timeframe 1h || echo "(the checker found problems: see above; the demo goes on)"

step "3. what is stored"
$THUNES data list

step "4. compute the default feature set (causal, gap-flagged)"
$THUNES features compute --symbol BTC/USDT --timeframe 1h --out "$OUT/features_BTCUSDT_1h.parquet"

step "5. backtest the SMA crossover (signals fill at the next bar's open; fees, slippage, filters and risk limits on)"
# stderr (the "wrote KIND: PATH" lines) is also kept, so the summary below prints the paths the command wrote
{ $THUNES backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h --param fast=10 --param slow=50 \
  --out "$OUT/backtest" --report 2>&1 1>&3 | tee "$OUT/backtest.log" >&2; } 3>&1
wrote() { sed -n "s/^wrote $1: //p" "$OUT/backtest.log"; }

step "6. sweep 90 parameter pairs in one kernel call"
$THUNES backtest sweep --strategy sma_cross --symbol BTC/USDT --timeframe 1h \
  --grid fast=5:50:5 --grid slow=20:200:20 --top 5 --out "$OUT/backtest"

rm -rf "$OUT/paper"  # a fresh paper run each time (a kept run folder would resume)
step "7. paper-trade the same strategy against the local exchange (accelerated replay of the last bars)"
$THUNES paper --strategy sma_cross --symbol BTC/USDT --timeframe 1h --replay-speed 36000 --bars 300 \
  --out "$OUT/paper"

step "8. verify the tamper-evident audit trail the paper run appended to (settings audit.path)"
$THUNES audit verify

rm -rf "$OUT/bot"  # the in-process local exchange starts fresh, so does the bot's folder
step "9. a multi-pair bot: BTC, ETH, SOL, XRP traded in one process with one risk manager (lockstep replay)"
$THUNES bot run --pairs BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT --timeframe 5m --param fast=5 --param slow=20 \
  --bars 200 --state-dir "$OUT/bot" --quiet
$THUNES bot profit --state-dir "$OUT/bot"
$THUNES audit verify "$OUT/bot/audit.jsonl" --db "sqlite:///$OUT/bot/execution.sqlite"  # the anchors are in the bot's own database

step "done"
echo "report:  $(wrote report) (open it in a browser; works offline)"
echo "trades:  $(wrote trades), paper ledger: $OUT/paper/ledger.csv"
echo "bot:     $OUT/bot (ledger.csv, events.jsonl, audit.jsonl; thunes bot status --state-dir $OUT/bot)"

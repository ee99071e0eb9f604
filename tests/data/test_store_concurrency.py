"""Across processes: two writers and a reader at the same time, no lock errors, no torn reads (both backends)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd

from thunes.data.store import open_store
from thunes.data.synthetic import generate_candles

BATCHES, BATCH = 40, 50

_WRITER = textwrap.dedent(
    """
    import sys
    from thunes.data.store import open_store
    from thunes.data.synthetic import generate_candles
    url, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    frame = generate_candles(batches * size, timeframe="1m", seed=11)
    with open_store(url) as store:
        for i in range(batches):
            store.insert("BTC/USDT", "1m", frame.iloc[i * size:(i + 1) * size], source="proc")
    print("done")
    """
)

_READER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from thunes.data.store import open_store
    from thunes.data.synthetic import generate_candles
    url, total = sys.argv[1], int(sys.argv[2])
    expected = generate_candles(total, timeframe="1m", seed=11)
    seen, loads = 0, 0
    with open_store(url) as store:
        while seen < total:
            frame = store.load("BTC/USDT", "1m")
            # Both writers append the same candles in order, so every snapshot is a prefix.
            pd.testing.assert_frame_equal(frame, expected.iloc[:len(frame)], check_freq=False)
            assert len(frame) >= seen, (len(frame), seen)
            seen, loads = len(frame), loads + 1
    print("loads", loads)
    """
)


def test_two_writer_processes_and_a_reader_process_share_one_store(store_url: str) -> None:
    url = store_url
    with open_store(url):
        pass  # create the schema up front so the processes race only on data
    total = BATCHES * BATCH
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, str(BATCHES), str(BATCH)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", _WRITER, url, str(BATCHES), str(BATCH)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", _READER, url, str(total)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]
    outputs = [p.communicate(timeout=120) for p in procs]

    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    assert outputs[0][0].strip() == outputs[1][0].strip() == "done"
    assert outputs[2][0].startswith("loads ")
    with open_store(url) as store:
        assert store.count("BTC/USDT", "1m") == total
        pd.testing.assert_frame_equal(store.load("BTC/USDT", "1m"),
                                      generate_candles(total, timeframe="1m", seed=11), check_freq=False)

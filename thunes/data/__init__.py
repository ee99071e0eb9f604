"""Market data: candle stores, download, import/export, quality checks, samples and synthetic data."""

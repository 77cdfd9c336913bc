"""What a `pyecho learn` run writes: metrics.json, the figures and report.md."""

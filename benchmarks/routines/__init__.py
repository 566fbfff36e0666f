"""The routines of `benchmarks/run.py`, one module per domain (DESIGN §7); run them through the
driver, which owns the options, the timing helper, the table printer and the JSON writer."""

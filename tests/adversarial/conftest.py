"""The adversarial suite: generated hostile input against the decoder, the mapping, the sink's HTTP
handling and a real worker on the real stack. Figures go to the terminal summary (printed by
tests/fixtures/parallel.py from the root conftest, so they are printed once under pytest-xdist too)."""

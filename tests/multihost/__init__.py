"""Multi-process JAX on one machine: a launcher (`launch`), the per-process program (`worker`),
and what the processes train and compare (`cases`). The tests are in tests/test_multihost.py."""

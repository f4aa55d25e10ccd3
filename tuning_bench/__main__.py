"""``python -m tuning_bench`` is the ``tbench`` command."""

from tuning_bench.cli import main

main()

"""``python -m tuning_bench`` is the ``tbench`` command."""

from tuning_bench.cli.main import main

main()

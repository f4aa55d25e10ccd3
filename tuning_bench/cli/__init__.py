"""The ``tbench`` command line and its terminal views."""

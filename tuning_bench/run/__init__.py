"""A run: settings, the grid of cells, executors, and the results document."""

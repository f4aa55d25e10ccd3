"""Statistics over results: the paired bootstrap (``bootstrap``) and the per-example data of a cell
turned into arrays it can resample (``samples``). Pure numpy; nothing here runs a model."""

"""The engine: one cell's work — data, training, generation, evaluation, measurement, saved states."""

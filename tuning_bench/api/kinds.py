"""The small vocabularies shared by tasks, methods and models."""

from __future__ import annotations

from enum import Enum


class TaskKind(str, Enum):
    """What a task asks of the model."""

    GENERATION = "generation"
    CLASSIFICATION = "classification"


class ModelKind(str, Enum):
    """What kind of network a model is, which decides how a task is posed to it."""

    CAUSAL_LM = "causal-lm"  # decoder-only: generates, classifies by scoring label words
    ENCODER = "encoder"  # BERT-like: classifies through a sequence-classification head

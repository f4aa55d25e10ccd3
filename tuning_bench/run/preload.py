"""Imported once by the fork server that starts cell processes, so that no cell pays these again.

Importing torch, transformers, peft and evaluate (for Hub metrics) takes several seconds; each cell
process is forked from a server that has done this already. Nothing here touches a device, so
forking stays safe for CUDA.
"""

import warnings

import evaluate  # noqa: F401
import peft  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401

from tuning_bench.engine import cell, data, evaluation, generation, measure, prompting, state, trainer  # noqa: F401
from tuning_bench.host import lookup  # noqa: F401
from tuning_bench.metrics import json_objects, labels, text  # noqa: F401  # the shipped metric functions

# Library notices that say nothing about the result (API renames, PEFT ignoring position ids, which
# the engine handles itself) would otherwise repeat in every cell's output.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")

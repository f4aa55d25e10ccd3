"""The one training loop every method goes through: same budget, batches, optimiser and schedule."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from tuning_bench.engine.data import Encoded, length_bucketed_batches, sequential_batches
from tuning_bench.api.kinds import ModelKind
from tuning_bench.engine.losses import supports_logits_to_keep
from tuning_bench.engine.strategies import Strategy, training_strategy


StepHook = Callable[[Any, int, int], None]  # (model, step counted from 1, total steps)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """The shared training budget. Only ``learning_rate`` comes from the method (or the user)."""

    steps: int
    batch_size: int
    learning_rate: float
    seed: int
    warmup_ratio: float = 0.1  # linear warm-up over the first 10 % of steps, then linear decay to 0
    weight_decay: float = 0.0  # none: soft prompts and adapters are small, and decay would differ by method
    max_grad_norm: float = 1.0
    val_every: int = 0  # 0: validate only at the end
    patience: int = 0  # validations without improvement before stopping; 0: no early stopping
    min_delta: float = 0.0  # the least drop in validation loss that counts as an improvement


@dataclass
class TrainLog:
    """What happened during training, step by step."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    tokens: int = 0
    target_tokens: int = 0
    wall_seconds: float = 0.0  # the whole phase, validation included
    val_seconds: float = 0.0
    best_step: int | None = None  # the validation with the lowest loss (None: never validated)
    best_val: float | None = None
    seconds_to_best: float | None = None  # training time (step times, validation excluded) up to best_step
    stopped_early: bool = False
    state_step: int = 0  # the step whose trainable state the model holds after training (best_step when kept)


@dataclass
class Feeder:
    """Turns encoded examples into device batches and computes the loss for one model kind, through the
    strategy's collate and loss (by default the one for the model kind)."""

    kind: ModelKind
    pad_id: int
    device: torch.device
    autocast_dtype: torch.dtype | None = None
    use_keep: bool = True
    strategy: Strategy | None = None

    def __post_init__(self) -> None:
        if self.strategy is None:
            self.strategy = training_strategy(self.kind)

    def batch(self, items: Sequence[Encoded]) -> dict[str, Any]:
        batch = self.strategy.collate(items, self.pad_id)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        with self.autocast():
            return self.strategy.loss(model, batch, self.use_keep)


def make_feeder(model: Any, kind: ModelKind, pad_id: int, device: torch.device, autocast_dtype: torch.dtype | None,
                strategy: Strategy | None = None) -> Feeder:
    use_keep = kind is ModelKind.CAUSAL_LM and supports_logits_to_keep(model)
    return Feeder(kind, pad_id, device, autocast_dtype, use_keep, strategy)


@torch.no_grad()
def mean_loss(model: Any, examples: Sequence[Encoded], feeder: Feeder, batch_size: int) -> float:
    """Mean target-token loss (causal LM) or mean example loss (encoder) over ``examples``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for indices in sequential_batches([e.length for e in examples], batch_size):
        loss, n = feeder.loss(model, feeder.batch([examples[i] for i in indices]))
        total += float(loss)
        count += n
    model.train(was_training)
    return total / max(count, 1)


def make_optimizer(params: list[Any], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it: the same update in one kernel per step, which saves
    ~15 % of a full fine-tuning step on a 2-core CPU (bench/RESULTS.md); identical losses.

    ``params`` is a list of tensors or of ``torch.optim`` parameter groups (a group's own "lr" wins)."""
    try:
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    warmup = max(1, round(config.warmup_ratio * config.steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    return factor


class Trainer:
    """One optimisation step at a time: AdamW, warm-up and linear decay, gradient clipping.

    ``train`` drives it over the step budget; benchmarks drive it step by step to compare it with a
    hand-written loop on the very same batches.
    """

    def __init__(self, model: Any, feeder: Feeder, config: TrainConfig,
                 param_groups: list[dict[str, Any]] | None = None, step_hook: StepHook | None = None) -> None:
        """``param_groups``: the optimiser's groups (default: every parameter that requires grad, at
        ``config.learning_rate``); ``step_hook(model, step, total)`` runs after each optimiser step."""
        groups = param_groups if param_groups is not None else [{"params": [p for p in model.parameters() if p.requires_grad]}]
        self.params = [p for group in groups for p in group["params"]]
        if not self.params:
            raise ValueError("the method left no trainable parameters")
        self.model, self.feeder, self.config, self.step_hook = model, feeder, config, step_hook
        self.optimizer = make_optimizer(groups, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(config))
        self.log = TrainLog()
        self.steps_done = 0
        model.train()  # validation (mean_loss) restores this mode, so the step need not set it again

    def step(self, items: Sequence[Encoded]) -> float:
        """Train on one batch; returns its mean target loss. Raises NonFiniteLoss."""
        step_start = time.perf_counter()
        batch = self.feeder.batch(items)
        loss_sum, count = self.feeder.loss(self.model, batch)
        loss = loss_sum / max(count, 1)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss became {float(loss)} at step {self.steps_done + 1}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.log.learning_rates.append(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        if self.step_hook is not None:  # before zero_grad: a rank update (AdaLoRA) reads the gradients
            self.step_hook(self.model, self.steps_done + 1, self.config.steps)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())  # synchronises with the device, so the step time below is complete
        if self.feeder.device.type == "cuda":
            torch.cuda.synchronize()
        self.log.step_seconds.append(time.perf_counter() - step_start)
        self.log.train_loss.append(value)
        self.log.tokens += batch["tokens"]
        self.log.target_tokens += count
        self.steps_done += 1
        return value

    def validate(self, examples: Sequence[Encoded]) -> float:
        """Validation loss now, recorded against the steps done so far."""
        val_start = time.perf_counter()
        val = mean_loss(self.model, examples, self.feeder, self.config.batch_size)
        self.log.val_seconds += time.perf_counter() - val_start
        if not math.isfinite(val):
            raise NonFiniteLoss(f"validation loss became {val} at step {self.steps_done}")
        self.log.val_loss.append((self.steps_done, val))
        return val


class BestState:
    """The lowest validation loss so far, its step and training time, and, when ``keep`` is set, a copy of
    the trainable tensors at that step (in memory: only what requires grad, never the frozen model)."""

    def __init__(self, model: Any, min_delta: float, keep: bool) -> None:
        self.min_delta, self.keep = min_delta, keep
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.tensors: list[torch.Tensor] = []
        self.step: int | None = None
        self.val: float | None = None
        self.seconds: float | None = None

    def offer(self, step: int, val: float, seconds: float) -> bool:
        """Record ``val`` measured after ``step``; True when it improves on the best by at least min_delta."""
        if self.val is not None and not (val < self.val and self.val - val >= self.min_delta):
            return False
        self.step, self.val, self.seconds = step, val, seconds
        if self.keep:
            with torch.no_grad():
                if self.tensors:
                    for saved, param in zip(self.tensors, self.params):
                        saved.copy_(param)  # reuse the copies: no second allocation after the first best
                else:
                    self.tensors = [param.detach().clone() for param in self.params]
        return True

    @torch.no_grad()
    def restore(self) -> None:
        """Put the kept tensors back into the model's trainable parameters."""
        for saved, param in zip(self.tensors, self.params):
            param.copy_(saved)


def train(
    model: Any,
    train_examples: Sequence[Encoded],
    val_examples: Sequence[Encoded],
    feeder: Feeder,
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
    param_groups: list[dict[str, Any]] | None = None,
    step_hook: StepHook | None = None,
) -> TrainLog:
    """Train the parameters that require grad for ``config.steps`` steps, validating every
    ``config.val_every`` steps and at the end.

    With ``config.patience`` > 0 (early stopping), training stops after that many validations in a row
    without an improvement of at least ``config.min_delta``, and the trainable tensors of the best
    validation are put back, so the caller evaluates the best state. Without it the final state stays
    and the log's best step only describes the curve.

    Batches are drawn by length buckets from a seeded sampler and padded to the longest in each
    batch. ``param_groups`` and ``step_hook`` come from the method (``Method.parameter_groups`` and
    ``Method.on_step``). Raises NonFiniteLoss when the loss stops being finite.
    """
    torch.manual_seed(config.seed)
    trainer = Trainer(model, feeder, config, param_groups, step_hook)
    batches = length_bucketed_batches([e.length for e in train_examples], config.batch_size, config.seed)
    best = BestState(model, config.min_delta, keep=config.patience > 0)
    since_best = 0
    log = trainer.log
    started = time.perf_counter()
    for step in range(1, config.steps + 1):
        value = trainer.step([train_examples[i] for i in next(batches)])
        if on_step:
            on_step(step, value)
        if val_examples and (step == config.steps or (config.val_every and step % config.val_every == 0)):
            val = trainer.validate(val_examples)
            since_best = 0 if best.offer(step, val, sum(log.step_seconds)) else since_best + 1
            if config.patience and since_best >= config.patience and step < config.steps:
                log.stopped_early = True
                break
    log.state_step = trainer.steps_done
    if best.keep and best.step is not None and best.step != trainer.steps_done:
        best.restore()
        log.state_step = best.step
    log.best_step, log.best_val, log.seconds_to_best = best.step, best.val, best.seconds
    log.wall_seconds = time.perf_counter() - started
    model.eval()
    return log

"""The training loop: any model, any tasks, any weighting method.

One epoch = one shuffled pass over the training split. After each epoch the model is scored on
the validation split; the best epoch (by ``monitor``) is kept and early stopping watches it. The
test split is scored once, with the best epoch's weights: never used for any choice.
Single-task learning is the same trainer with one task.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from manytask.data.batch import Batch, TensorDataset
from manytask.errors import ConfigError
from manytask.models.set_encoder import parameter_counts
from manytask.tasks import Task, stack_losses
from manytask.training.checkpoint import CheckpointError, fault_point
from manytask.training.distributed import Distributed
from manytask.training.guard import LossGuard, NonFiniteLoss, check_finite_parameters
from manytask.training.optimizer import OptimizerSpec
from manytask.training.param_groups import param_groups
from manytask.training.resume import check_same_config, restore_weights
from manytask.training.run_state import FitResult, RunState, monitor_value, step_rows
from manytask.training.rundir import RunDir
from manytask.training.seeding import resolve_device, seed_everything
from manytask.training.tensorboard import TensorBoardLog
from manytask.weighting import SharedParts, StepInfo, WeightingMethod, create
from manytask.weighting.terms import element_losses, stack_means

EpochCallback = Callable[["Trainer", int], None]
#: ``(model, batch, losses)``: looks at a training step's live graph before the backward
#: (e.g. to measure per-task gradients); must not change the model, the batch or the losses
StepHook = Callable[[nn.Module, Batch, Tensor], None]


class Trainer:
    """Train a multi-task model with a weighting method.

    Args:
        model: a module returning ``dict[task, prediction]``; if it has
            ``forward_with_features`` (``MultiTaskModel`` does) the shared representation and
            shared parameters are handed to the weighting method.
        tasks: the tasks, in loss order.
        weighting: a :class:`WeightingMethod` or a registered name (default ``uniform``).
        optimizer: an :class:`OptimizerSpec`.
        epochs, batch_size: schedule.
        patience: stop after this many epochs without improvement of ``monitor`` (None = never).
        monitor: ``auto`` (mean validation accuracy if all tasks classify, else the summed
            validation loss), ``loss``, ``mean_accuracy`` or ``<task>.<metric>``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        seed, deterministic: reproducibility.
        run_dir: where to write history, checkpoints and summary (None = nothing written).
        callbacks: functions ``(trainer, epoch)`` called after each epoch's validation.
        nonfinite: what a NaN/inf training loss does: ``stop`` (raise :class:`NonFiniteLoss`
            before the optimizer step; the last good checkpoint is kept) or ``skip`` (skip the
            step and count it); see :mod:`manytask.training.guard`.
        precision: ``fp32``, or ``bf16``: forward passes in bfloat16 autocast (on CUDA: tensor
            cores, half the activation memory), losses, gradients and weights in float32.
        tensorboard: also write every epoch's history as TensorBoard scalars under
            ``RUN_DIR/tensorboard`` (:mod:`manytask.training.tensorboard`).
        max_steps: stop after this many optimizer steps (None = the whole schedule). The
            learning-rate schedule stays the one of ``epochs`` epochs: a run stopped early, not a
            shorter run (Standley et al.'s early-stopping approximation); the epoch in progress
            ends there and is scored on the validation split.
        weighting_optimizer: ``lr``/``momentum``/``weight_decay`` of the weighting method's own
            learnable parameters (their own parameter group); a setting not given takes the
            method's default (``param_optimizer`` on its class), else the network's
            (:mod:`manytask.training.param_groups`).
    """

    def __init__(
        self,
        model: nn.Module,
        tasks: Sequence[Task],
        weighting: WeightingMethod | str = "uniform",
        optimizer: OptimizerSpec | None = None,
        *,
        epochs: int = 10,
        batch_size: int = 128,
        patience: int | None = None,
        monitor: str = "auto",
        device: str = "auto",
        seed: int = 0,
        deterministic: bool = True,
        run_dir: RunDir | str | None = None,
        progress: bool = True,
        eval_batch_size: int = 256,
        callbacks: Sequence[EpochCallback] = (),
        log_steps: bool = True,
        nonfinite: str = "stop",
        weighting_optimizer: Mapping[str, float | None] | None = None,
        precision: str = "fp32",
        tensorboard: bool = False,
        max_steps: int | None = None,
    ) -> None:
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        if epochs < 1:
            raise ConfigError(f"training.epochs must be >= 1, got {epochs}")
        if batch_size < 1:
            raise ConfigError(f"training.batch_size must be >= 1, got {batch_size}")
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"training.precision: expected fp32 or bf16, got {precision!r}")
        self._bf16 = precision == "bf16"
        self.tensorboard = tensorboard
        self._tb: TensorBoardLog | None = None
        self.tasks = list(tasks)
        #: this process's place in a ``torchrun`` job (:mod:`manytask.training.distributed`)
        self.dist = Distributed.from_env()
        self.device = self.dist.device(resolve_device(device))
        self.seed = seed
        self.generator = seed_everything(seed, deterministic)
        self.model = model.to(self.device)
        self.weighting = create(weighting, self.tasks) if isinstance(weighting, str) else weighting
        self.weighting.to(self.device)
        self.dist.init(self.device)
        self.dist.broadcast([*self.model.parameters(), *self.model.buffers(), *self.weighting.parameters()])
        self.spec = optimizer or OptimizerSpec()
        groups = param_groups(self.model, self.weighting, self.spec, weighting_optimizer)
        self.optimizer, self.scheduler = self.spec.build(groups, epochs)
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.monitor = monitor
        self.run_dir = RunDir(run_dir) if isinstance(run_dir, str) else run_dir
        if self.run_dir is not None and not self.dist.is_main:
            self.run_dir.readonly = True  # only rank 0 writes
        self.progress = progress
        self.eval_batch_size = eval_batch_size
        self.callbacks = list(callbacks)
        self.log_steps = log_steps
        self._has_features = hasattr(self.model, "forward_with_features")
        # methods such as FAMO update themselves from the losses after the optimizer step
        self._after_step = self.weighting.wants_after_step
        # methods such as class-wise auxiliary weighting split a task's loss by its elements
        self._loss_terms = self.weighting.wants_loss_terms
        self.step = 0
        #: the last epoch's mean training loss per task (set by :meth:`end_epoch`)
        self.epoch_losses: Tensor | None = None
        self._restart_selection = False
        self.guard = LossGuard([t.name for t in self.tasks], nonfinite)
        self._epoch = 0

    def restart_selection(self) -> None:
        """Forget the best epoch so far: for a callback that changed the architecture (Selective
        Sharing merging branches), so that model selection only compares epochs of the new one."""
        self._restart_selection = True

    # ------------------------------------------------------------------ pieces
    def _shared(self, z: Tensor | None) -> SharedParts:
        m = self.model
        if self._has_features:
            return SharedParts(params=m.shared_parameters(), features=z, last_layer=m.last_shared_layer())  # type: ignore[operator]
        return SharedParts(params=list(m.parameters()), features=None, last_layer=None)

    def _forward(self, *args: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        """The model's shared representation (None without ``forward_with_features``) and
        predictions for model arguments ``args`` (``Batch.model_args``: the inputs, plus the
        ``set_mask`` of set inputs). Under ``precision="bf16"``
        the forward runs in bfloat16 autocast and the predictions come back as float32 (losses
        are computed in float32)."""
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self._bf16):
            if self._has_features:
                z, preds = self.model.forward_with_features(*args)  # type: ignore[operator]
            else:
                z, preds = None, self.model(*args)
        if self._bf16:
            preds = {k: v.float() for k, v in preds.items()}
        return z, preds

    @torch.no_grad()
    def predict(self, data: TensorDataset) -> dict[str, Tensor]:
        """Predictions for every task over a whole split (in order)."""
        self.model.eval()
        outs: dict[str, list[Tensor]] = {t.name: [] for t in self.tasks}
        for b in data.batches(self.eval_batch_size):
            b = b.to(self.device)
            preds = self._forward(*b.model_args)[1]
            for t in self.tasks:
                outs[t.name].append(preds[t.name].float().cpu())
        self.model.train()
        return {k: torch.cat(v) for k, v in outs.items()}

    def evaluate(self, data: TensorDataset) -> dict[str, dict[str, float]]:
        """Per-task loss and metrics over a whole split."""
        preds = self.predict(data)
        return {
            t.name: t.metrics(preds[t.name], data.targets[t.name], data.masks.get(t.name))
            for t in self.tasks
        }

    @torch.no_grad()
    def embed(self, data: TensorDataset) -> Tensor:
        """The shared representation of every sample of ``data``."""
        self.model.eval()
        enc = getattr(self.model, "encode", None)
        if enc is None:
            raise ConfigError("model has no encode(); cannot compute embeddings")
        out = []
        for b in data.batches(self.eval_batch_size):
            b = b.to(self.device)
            out.append(enc(*b.model_args).float().cpu())
        self.model.train()
        return torch.cat(out)

    def _check(self, data: TensorDataset, split: str) -> None:
        for t in self.tasks:
            if t.name not in data.targets:
                raise ConfigError(f"{split} data has no target for task '{t.name}'")
            t.check_target(data.targets[t.name], where=f"{split} split")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "weighting": self.weighting.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "guard": self.guard.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.weighting.load_state_dict(state["weighting"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.guard.load(state.get("guard"))

    # ------------------------------------------------------------------ one step, one epoch
    def train_step(self, batch: Batch, inspect: StepHook | None = None) -> tuple[Tensor, StepInfo]:
        """One optimizer step on ``batch``; returns the task losses (detached) and the weighting's info.

        forward → :func:`stack_losses` (or, for a method with ``wants_loss_terms``, the per-element
        terms in ``SharedParts.terms`` and their means) → ``inspect(model, batch, losses)`` (if given) →
        ``weighting.backward`` → ``optimizer.step()`` → ``weighting.after_step`` with the losses of
        the same batch recomputed (only for methods that want it, e.g. FAMO). ``inspect`` sees the
        live graph before the backward (it may take gradients with ``retain_graph=True``); it runs
        with the random number generators forked, so it cannot change the run's random stream.
        """
        if batch.inputs.device != self.device:
            batch = batch.to(self.device, non_blocking=True)
        share = 1.0
        if self.dist.active:  # this process's slice of the batch
            batch, share = self.dist.shard(batch)
        self.optimizer.zero_grad(set_to_none=True)
        z, preds = self._forward(*batch.model_args)
        shared = self._shared(z)
        if self.dist.active:  # the method sees global loss values and reduces per-task gradients
            shared.share, shared.all_sum = share, self.dist.all_sum
        if self._loss_terms:
            shared.terms = element_losses(self.tasks, preds, batch.targets, batch.masks)
            losses = stack_means(self.tasks, shared.terms)
        else:
            losses = stack_losses(self.tasks, preds, batch.targets, batch.masks)
        seen = self.dist.average(losses, share) if self.dist.active else losses.detach()
        if not self.guard.check(seen, self.step + 1, self._epoch):
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            return seen, StepInfo(weights=torch.full_like(seen, math.nan))
        if inspect is not None:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                inspect(self.model, batch, losses)
        info = self.weighting.backward(losses, shared)
        if self.dist.active:
            self.dist.average_gradients([p for g in self.optimizer.param_groups for p in g["params"]], share)
        self.optimizer.step()
        if self._after_step:
            with torch.no_grad():
                new_losses = stack_losses(self.tasks, self._forward(*batch.model_args)[1], batch.targets, batch.masks)
            if self.dist.active:
                new_losses = self.dist.average(new_losses, share)
            self.weighting.after_step(new_losses)
        self.step += 1
        fault_point("step", self.step)
        return seen, info

    def end_epoch(self, mean_losses: Tensor, epoch: int) -> None:
        """After the last step of an epoch: check that every mean training loss is finite, give
        them to ``weighting.on_epoch_end`` and step the learning-rate schedule (ReduceLROnPlateau
        watches their sum)."""
        if not torch.isfinite(mean_losses).all():
            bad = [t.name for t, v in zip(self.tasks, mean_losses.tolist()) if not math.isfinite(v)]
            raise FloatingPointError(f"epoch {epoch}: training loss is not finite for task(s) {', '.join(bad)}")
        self.epoch_losses = mean_losses.detach().cpu()
        self.weighting.on_epoch_end(mean_losses.to(self.device))
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(float(mean_losses.sum()))
        else:
            self.scheduler.step()

    def train_epoch(self, train: TensorDataset, epoch: int, inspect: StepHook | None = None) -> dict[str, Any]:
        """One shuffled pass over ``train`` (:meth:`train_step` per batch, then :meth:`end_epoch`);
        returns the mean task losses, the weights of every step and the steps' extra logs."""
        self.model.train()
        self._epoch = epoch
        loss_sum = torch.zeros(len(self.tasks), device=self.device)
        weights: list[Tensor] = []
        extras: list[dict[str, float]] = []
        skipped = 0
        for batch in train.batches(self.batch_size, shuffle=True, generator=self.generator):
            if self.out_of_steps():
                break
            before = self.guard.skipped_steps
            losses, info = self.train_step(batch, inspect)
            weights.append(info.weights.detach())
            if self.guard.skipped_steps != before:  # a non-finite step, skipped (policy ``skip``)
                skipped += 1
                continue
            loss_sum += losses
            if info.extra:
                extras.append(info.extra)
        if not weights:
            raise ConfigError("training split is empty")
        if skipped == len(weights):
            raise NonFiniteLoss(f"epoch {epoch}: every training step had a non-finite loss (all skipped)",
                                step=self.step, epoch=epoch, tasks=[t.name for t in self.tasks])
        mean_losses = (loss_sum / (len(weights) - skipped)).cpu()
        self.end_epoch(mean_losses, epoch)
        w = torch.stack(weights).float().cpu()
        return {"losses": mean_losses, "weights": w, "extras": extras, "steps": len(weights), "skipped": skipped}

    def out_of_steps(self) -> bool:
        """Whether ``max_steps`` optimizer steps have been taken."""
        return self.max_steps is not None and self.step >= self.max_steps

    # ------------------------------------------------------------------ fit
    def fit(self, train: TensorDataset, val: TensorDataset | None = None,
            test: TensorDataset | None = None, *, resume: bool = False,
            config: dict[str, Any] | None = None) -> FitResult:
        """Train; select the best epoch on ``val`` (or the last epoch without ``val``);
        score ``test`` with the best weights; write the RunDir when one was given."""
        for data, split in ((train, "train"), (val, "validation"), (test, "test")):
            if data is not None:
                self._check(data, split)
        if train.inputs.device != self.device and self.device.type == "cuda":
            train = train.to(self.device)
        rd = self.run_dir
        if rd is None:
            return self._fit(train, val, test, resume, config)
        rd.lock()  # one owner per run directory: a second process is refused
        try:
            return self._fit(train, val, test, resume, config)
        except NonFiniteLoss as err:
            self._write_stopped(err)
            raise
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            rd.unlock()

    def _fit(self, train: TensorDataset, val: TensorDataset | None, test: TensorDataset | None,
             resume: bool, config: dict[str, Any] | None) -> FitResult:
        run = self._start_run(resume, config)
        if self.patience is not None and run.bad_epochs >= self.patience:
            run.stopped_early = True  # resumed after early stopping: nothing left to train
        t0 = time.perf_counter()
        bar = tqdm(range(run.start_epoch, self.epochs + 1), desc="epochs", disable=(not self.progress) or None,
                   leave=False, dynamic_ncols=True)
        for epoch in bar:
            if run.stopped_early or self.out_of_steps():
                break
            lr = self.optimizer.param_groups[0]["lr"]
            te = time.perf_counter()
            out = self.train_epoch(train, epoch)
            row, higher = self._epoch_row(epoch, time.perf_counter() - te, lr, out, val)
            self._keep_if_best(run, epoch, row["score"], higher)
            run.history.append(row)
            for cb in self.callbacks:
                cb(self, epoch)
            if self._restart_selection:
                run.forget_best()
                self._restart_selection = False
            self._log_epoch(run, row, out)
            bar.set_postfix(epoch=epoch, score=f"{row['score']:.4f}", best=run.best_epoch)
            if self.patience is not None and run.bad_epochs >= self.patience:
                run.stopped_early = True
                break
        bar.close()
        return self._finish(run, val, test, time.perf_counter() - t0)

    def _start_run(self, resume: bool, config: dict[str, Any] | None) -> RunState:
        """A fresh run, or the state of the last finished epoch of the RunDir (``resume``)."""
        run = RunState()
        rd = self.run_dir
        if rd is None:
            return run
        saved = rd.load_checkpoint() if resume else None
        if saved is not None and config is not None and rd.has("config.yaml"):
            check_same_config(rd.read_config(), config, str(rd.file("config.yaml")))
        if saved is None:
            rd.clear_outputs()  # a fresh run never leaves a previous run's summary beside its config
        if config is not None:
            rd.write_config(config)
        if saved is None:
            self._open_tensorboard(run)
            return run
        last, best, state = saved
        where = rd.file("checkpoint.safetensors")
        run.best_state = restore_weights(self.model, last, best, where)
        try:
            self.load_state_dict(state["trainer"])
            run.start_epoch = int(state["epoch"]) + 1
            run.best_score, run.best_epoch = float(state["best_score"]), int(state["best_epoch"])
            run.bad_epochs = int(state["bad_epochs"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{where}: state does not fit this run ({str(err).splitlines()[0][:200]})") from None
        rd.truncate_history(run.start_epoch - 1)
        run.history = rd.history()
        self._open_tensorboard(run)
        return run

    def _open_tensorboard(self, run: RunState) -> None:
        if self.tensorboard and self.run_dir is not None:
            self._tb = TensorBoardLog(self.run_dir.file("tensorboard"), first_epoch=run.start_epoch)

    def _epoch_row(self, epoch: int, train_seconds: float, lr: float, out: dict[str, Any],
                   val: TensorDataset | None) -> tuple[dict[str, Any], bool]:
        """The history row of an epoch, with its ``score``, and whether a higher score is better."""
        names = [t.name for t in self.tasks]
        row: dict[str, Any] = {"epoch": epoch, "train_seconds": train_seconds, "lr": lr}
        row.update({f"train_loss/{n}": float(v) for n, v in zip(names, out["losses"].tolist())})
        row.update({f"weight/{n}": float(v) for n, v in zip(names, out["weights"].nanmean(0).tolist())})
        if out.get("skipped"):
            row["skipped_steps"] = out["skipped"]
        if val is not None:
            vm = self.evaluate(val)
            for n in names:
                row.update({f"val/{n}/{m}": v for m, v in vm[n].items()})
            score, higher = monitor_value(self.monitor, self.tasks, vm)
        else:
            score, higher = -float(out["losses"].sum()), True
        row["score"] = score
        return row, higher

    def _keep_if_best(self, run: RunState, epoch: int, score: float, higher: bool) -> None:
        if not run.improves(score, higher):
            run.bad_epochs += 1
            return
        run.best_score, run.best_epoch, run.bad_epochs = score, epoch, 0
        run.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.run_dir is not None:
            self.run_dir.save_weights("best", self.model)

    def _log_epoch(self, run: RunState, row: dict[str, Any], out: dict[str, Any]) -> None:
        """history.jsonl, steps.jsonl, the last weights and the resumable state."""
        rd = self.run_dir
        if rd is None:
            return
        epoch = row["epoch"]
        rd.append_jsonl("history.jsonl", [row])
        if self._tb is not None:
            self._tb.log(row)
        if self.log_steps:
            rd.append_jsonl("steps.jsonl", step_rows([t.name for t in self.tasks], self.step - out["steps"] + 1,
                                                     epoch, out["weights"].tolist(), out["extras"]))
        fault_point("before_weights", epoch)
        check_finite_parameters(self.model, self.step, epoch)
        rd.save_weights("last", self.model)
        fault_point("before_checkpoint", epoch)
        rd.save_checkpoint(self.model.state_dict(), run.best_state,
                           {"trainer": self.state_dict(), "epoch": epoch, "best_score": run.best_score,
                            "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs})
        fault_point("after_checkpoint", epoch)

    def _write_stopped(self, err: NonFiniteLoss) -> None:
        """summary.json of a run stopped by a non-finite loss (the checkpoint is left as it was)."""
        assert self.run_dir is not None
        self.run_dir.write_summary({
            "status": "stopped_nonfinite", "error": str(err), "step": err.step, "epoch": err.epoch,
            "nonfinite_tasks": err.tasks, "tasks": [t.name for t in self.tasks], "weighting": self.weighting.name,
            "seed": self.seed, "nonfinite": self.guard.summary(), "device": str(self.device),
        })

    def _finish(self, run: RunState, val: TensorDataset | None, test: TensorDataset | None,
                seconds: float) -> FitResult:
        """Back to the best epoch's weights, score ``val``/``test``, write the summary."""
        if run.best_state is not None:
            self.model.load_state_dict(run.best_state)
        val_metrics = self.evaluate(val) if val is not None else {}
        test_metrics = self.evaluate(test) if test is not None else None
        history = run.history
        result = FitResult(best_epoch=run.best_epoch, best_score=run.best_score, epochs_run=len(history),
                           history=history, val=val_metrics, test=test_metrics, seconds=seconds,
                           stopped_early=run.stopped_early)
        if self.run_dir is not None:
            self.run_dir.write_summary({
                "status": "complete", "tasks": [t.name for t in self.tasks], "weighting": self.weighting.name,
                "seed": self.seed, "best_epoch": run.best_epoch, "best_score": run.best_score,
                "monitor": self.monitor, "epochs_run": len(history), "stopped_early": run.stopped_early,
                "train_seconds": sum(r["train_seconds"] for r in history), "seconds": seconds,
                "steps_run": self.step, "max_steps": self.max_steps,
                "val": val_metrics, "test": test_metrics, "device": str(self.device),
                "nonfinite": self.guard.summary(),
                "parameters": dict(zip(("trainable", "total"), parameter_counts(self.model))),
            })
        return result

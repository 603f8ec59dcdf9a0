"""Pool-based active learning as one Lightning callback.

Design: **one** ``trainer.fit`` whose epochs are grouped into rounds. A round is either

- ``steps_per_round`` optimizer steps of the task model: **one epoch per round**, whose loader cycles
  the labeled set (seeded order, :class:`~zerosum.datamodules.EpochShuffleSampler`) for exactly that
  many batches, however few labels there are (VAAL's official code, baal and Gal et al. train a
  fixed number of iterations per round); or
- ``epochs_per_round`` epochs, each one pass over the labeled set in full batches.

A "step" is one training batch: a :class:`~zerosum.modules.Game` steps each of its players (task
model, VAE, discriminator, ...) as its ``training_step`` says, once per batch; under DDP every rank
trains ``steps_per_round`` batches of its own (the global batch is ``world_size x batch_size``).

At the end of a round (``on_train_epoch_end`` of its last epoch, after that epoch's validation) the
callback

1. optionally restores the round's best weights on the validation split (``select_weights="best_val"``)
   and re-estimates BatchNorm statistics on the labeled set (``recalibrate_batchnorm``),
2. evaluates the model on the test (or val) split, sharded over ranks,
3. checks the optional stopping criteria (``max_labels``, ``plateau_patience``), asks the strategy
   for ``budget`` unlabeled indices (``strategy.select``, then ``strategy.round_metrics()``), checks
   ``stop_below_score``, broadcasts rank 0's choice and labels it in the pool datamodule,
4. writes ``rounds.csv``, ``labeled.json`` and ``learning_curve.png`` atomically and logs ``active/*``
   scalars against the number of labels,
5. resets the weights to their initial values and rebuilds the optimizers and schedulers
   (``reinit=True``, as VAAL's code retrains from scratch every split), except for the top-level
   children a module names in its class attribute ``keep_across_rounds`` (e.g. SRAL's RL agent,
   which learns across rounds): those keep their weights, and the optimizers over only their
   parameters keep their state, and
6. asks Lightning to reload the train dataloader, so the next epoch iterates the new labeled set.

Why this design: Lightning 2.x has no custom loops, and one ``fit`` keeps everything Lightning gives
for free: loggers, a single DDP process group, checkpointing and ``--ckpt_path last``.

Resume. The callback state (settings, rounds done, per-round results, the initial weights, the
round's best weights so far, the strategy's state) and the pool (its ``state_dict``) are in every
checkpoint. A resume whose settings differ from the checkpoint's stops with one line naming each
changed setting. Randomness is a function of ``(seed, epoch, batch)``: the global RNGs are re-seeded
at every training batch, each sample's augmentation has its own seed, and the training loader is
resumable mid-epoch, so a run resumed from any checkpoint (the epoch-end ones Lightning writes by
default, or ``every_n_train_steps`` ones inside a long round) replays exactly the batches,
augmentations and dropout masks of an uninterrupted run. The round end is idempotent (it runs only if
the round is not yet recorded in the state), and a kill mid-query leaves the last checkpoint's pool
untouched (the query is simply redone); ``label`` refuses already-labeled indices.

Lightning validates under ``inference_mode``; the round end runs outside it (with gradients off,
unless a strategy turns them on), so strategies that train networks may use autograd.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Literal, Optional, Sequence, Union

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from zerosum.atomic import remove_stale_tmp
from zerosum.callbacks.active_outputs import (find_random_baselines, plot_learning_curve, write_labeled_json,
                                              write_rounds_csv)
from zerosum.callbacks.round_weights import BestOnValidation, recalibrate_batchnorm
from zerosum.inference import evaluate_accuracy, outside_inference_mode
from zerosum.parallel import broadcast, sync_buffers
from zerosum.query.base import QueryStrategy

_MIX = 1_000_003


def _count_or_fraction(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not ((isinstance(value, int) and value >= 1) or
                                       (isinstance(value, float) and 0 < value < 1)):
        raise ValueError(f"{name}: got {value!r}; allowed: a count >= 1 (int) or a fraction in (0, 1) (float)")


def _positive_int(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: got {value!r}; allowed: an int >= 1")


def config_options(config: dict) -> dict:
    """The ActiveLearning options of a parsed YAML config: its ``active:`` section (with or without
    ``class_path``/``init_args``) or its entry in ``trainer.callbacks``."""
    section = config.get("active")
    if section:
        return section.get("init_args", section) if "class_path" in section else section
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        if str(callback.get("class_path", "")).endswith("ActiveLearning"):
            return callback.setdefault("init_args", {})
    raise KeyError("the config has no ActiveLearning options (neither `active:` nor trainer.callbacks)")


def flatten_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_settings(v, key + "."))
        else:
            out[key] = v
    return out


class ActiveLearning(L.Callback):
    """Run pool-based active learning inside ``trainer.fit`` (see the module docstring).

    Args:
        strategy: the query strategy (``zerosum.query.*Strategy`` or your own ``QueryStrategy``).
        rounds: training rounds; a query follows every round but the last, so the final labeled set is
            ``initial + (rounds - 1) * budget``. Sets ``max_epochs``.
        budget: samples labeled per query: a count (int >= 1) or a fraction in (0, 1) of the training split.
        steps_per_round: round length in optimizer steps of the task model (training batches per rank),
            cycling the labeled set; one epoch per round. Give this or ``epochs_per_round``.
        epochs_per_round: round length in passes over the labeled set (full batches, the last one
            completed from the next pass). Give this or ``steps_per_round``.
        select_weights: ``"last"`` (the weights at the round's end) or ``"best_val"`` (the weights with
            the best validation accuracy measured during the round; VAAL's official recipe).
        val_every_n_steps: with ``"best_val"`` and ``steps_per_round``, measure validation accuracy every
            this many steps (default: 10 times per round); with ``epochs_per_round``, every epoch.
        best_val_networks: top-level children whose best-on-validation weights are restored (default:
            all but ``keep_across_rounds``; VAAL's official code keeps only the task model's: ``[net]``).
        recalibrate_batchnorm: re-estimate BatchNorm statistics on the labeled set (evaluation
            transforms, training batch size) before the round is evaluated and the pool is scored.
        reinit: reset weights (to the initial ones) and optimizers/schedulers after every query. A
            module may declare ``keep_across_rounds: tuple[str, ...]``, names of top-level children
            (submodules, or parameters/buffers named up to their first ``.``) that the reset leaves
            alone; a rebuilt optimizer whose parameters all lie in kept children (the same parameters,
            in the same order, as the old optimizer at its position) gets the old one's state back.
            Schedulers are always rebuilt.
        eval_split: split evaluated at every round's end: ``"test"`` or ``"val"``.
        output_dir: where ``rounds.csv``, ``labeled.json`` and ``learning_curve.png`` go (default: the
            trainer's ``log_dir``, a new folder per run with a logger); a folder holding another run's
            results is refused.
        seed: base of the per-batch seeds (default: the ``seed_everything`` seed, else 0).
        max_labels: stop (no further query) once this many samples are labeled; the last query is cut
            to fit.
        plateau_patience: stop when the evaluated accuracy has not improved by more than
            ``plateau_min_delta`` for this many rounds.
        plateau_min_delta: the improvement (accuracy, 0-1) that resets ``plateau_patience``.
        stop_below_score: stop (without labeling the picks) when the mean acquisition score of the
            unlabeled pool (``score_mean`` in the strategy's ``round_metrics``) falls below this.

    The datamodule must be an :class:`~zerosum.datamodules.ActivePoolDataModule` (or offer its
    ``label``/``unlabeled_dataloader``/``num_train``/``num_labeled`` API); under ``fast_dev_run`` the
    single epoch is one round followed by one query.
    """

    def __init__(
        self,
        strategy: QueryStrategy,
        rounds: int,
        budget: Union[int, float],
        steps_per_round: Optional[int] = None,
        epochs_per_round: Optional[int] = None,
        select_weights: Literal["last", "best_val"] = "last",
        val_every_n_steps: Optional[int] = None,
        best_val_networks: Optional[list[str]] = None,
        recalibrate_batchnorm: bool = False,
        reinit: bool = True,
        eval_split: Literal["test", "val"] = "test",
        output_dir: Optional[str] = None,
        seed: Optional[int] = None,
        max_labels: Optional[int] = None,
        plateau_patience: Optional[int] = None,
        plateau_min_delta: float = 0.0,
        stop_below_score: Optional[float] = None,
    ):
        if not isinstance(strategy, QueryStrategy):
            raise TypeError(f"strategy: got {type(strategy).__name__}; allowed: a zerosum.query.QueryStrategy")
        _positive_int("rounds", rounds, allow_none=False)
        _count_or_fraction("budget", budget)
        if (steps_per_round is None) == (epochs_per_round is None):
            raise ValueError(f"steps_per_round: got steps_per_round={steps_per_round!r} and epochs_per_round="
                             f"{epochs_per_round!r}; allowed: exactly one of them, an int >= 1")
        _positive_int("steps_per_round", steps_per_round)
        _positive_int("epochs_per_round", epochs_per_round)
        if select_weights not in ("last", "best_val"):
            raise ValueError(f"select_weights: got {select_weights!r}; allowed: 'last', 'best_val'")
        _positive_int("val_every_n_steps", val_every_n_steps)
        if eval_split not in ("test", "val"):
            raise ValueError(f"eval_split: got {eval_split!r}; allowed: 'test', 'val'")
        _positive_int("max_labels", max_labels)
        _positive_int("plateau_patience", plateau_patience)
        if plateau_min_delta < 0:
            raise ValueError(f"plateau_min_delta: got {plateau_min_delta}; allowed: a number >= 0")
        self.strategy, self.rounds, self.budget = strategy, int(rounds), budget
        self.steps_per_round, self.epochs_per_round = steps_per_round, epochs_per_round
        self.select_weights, self.val_every_n_steps = select_weights, val_every_n_steps
        self.best_val_networks = list(best_val_networks) if best_val_networks is not None else None
        self.recalibrate_batchnorm, self.reinit, self.eval_split = recalibrate_batchnorm, reinit, eval_split
        self.output_dir, self.seed = output_dir, seed
        self.max_labels, self.plateau_patience, self.plateau_min_delta = max_labels, plateau_patience, plateau_min_delta
        self.stop_below_score = stop_below_score
        # checkpointed state
        self.completed_rounds = 0
        self.history: list[dict] = []
        self.stopped: Optional[str] = None
        self._init_state: Optional[dict] = None
        self._best = BestOnValidation(self.best_val_networks)
        # run-time
        self._budget_n: Optional[int] = None
        self._user_reload = 0
        self._initial_labeled: Optional[int] = None

    # ---- settings (recorded, and compared on resume) --------------------------------------------------
    def resolved_seed(self) -> int:
        return int(self.seed) if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def settings(self) -> dict[str, Any]:
        """Everything that defines the experiment (not where its outputs go)."""
        return {
            "strategy": self.strategy.settings(), "budget": self.budget, "rounds": self.rounds,
            "steps_per_round": self.steps_per_round, "epochs_per_round": self.epochs_per_round,
            "select_weights": self.select_weights, "val_every_n_steps": self.val_every_n_steps,
            "best_val_networks": self.best_val_networks, "recalibrate_batchnorm": self.recalibrate_batchnorm,
            "reinit": self.reinit, "eval_split": self.eval_split, "seed": self.resolved_seed(),
            "max_labels": self.max_labels, "plateau_patience": self.plateau_patience,
            "plateau_min_delta": self.plateau_min_delta, "stop_below_score": self.stop_below_score,
        }

    def flat_settings(self) -> dict[str, Any]:
        flat = flatten_settings(self.settings())
        flat["strategy"] = flat.pop("strategy.class")
        return flat

    # ---- setup ----------------------------------------------------------------------------------
    def _pool(self, trainer: L.Trainer):
        pool = trainer.datamodule
        needed = ("label", "unlabeled_dataloader", "num_train", "num_labeled", "num_unlabeled")
        if pool is None or not all(hasattr(pool, a) for a in needed):
            raise TypeError(
                "datamodule: ActiveLearning needs a pool, got "
                f"{type(pool).__name__ if pool is not None else 'no datamodule'}; allowed: wrap it as "
                "zerosum.datamodules.ActivePoolDataModule(datamodule=...)"
            )
        return pool

    def _epochs_per_round(self, trainer: L.Trainer) -> int:
        return 1 if trainer.fast_dev_run or self.steps_per_round is not None else int(self.epochs_per_round)

    def _round_of_epoch(self, trainer: L.Trainer, epoch: int) -> int:
        return epoch // self._epochs_per_round(trainer)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        pool = self._pool(trainer)
        n = pool.num_train
        self._budget_n = self.budget if isinstance(self.budget, int) else max(1, int(round(self.budget * n)))
        need = pool.num_labeled + (self.rounds - 1) * self._budget_n
        if self.max_labels is None and self.completed_rounds == 0 and need > n:
            raise ValueError(
                f"rounds: {pool.num_labeled} initial labels + (rounds - 1) = {self.rounds - 1} queries x budget "
                f"{self._budget_n} = {need} exceeds the training split ({n} samples); allowed: fewer rounds or a "
                "smaller budget")
        if hasattr(pool, "batches_per_epoch"):
            pool.batches_per_epoch = 1 if trainer.fast_dev_run and self.steps_per_round else self.steps_per_round
        elif self.steps_per_round is not None:
            raise TypeError("steps_per_round: the datamodule cannot size its epochs (no `batches_per_epoch`); "
                            "allowed: epochs_per_round, or an ActivePoolDataModule")
        if not trainer.fast_dev_run:
            total = self.rounds * self._epochs_per_round(trainer)
            if trainer.max_epochs != total:
                rank_zero_info(f"ActiveLearning: max_epochs set to {total} ({self.rounds} rounds)")
            trainer.fit_loop.max_epochs = total
        self._user_reload = trainer.reload_dataloaders_every_n_epochs
        self._best.check_names(pl_module)
        try:  # the split every round is evaluated on must exist
            self._eval_loader(trainer)
        except Exception as err:
            raise ValueError(f"eval_split: the datamodule gives no {self.eval_split} loader ({err}); allowed: "
                             "'test' or 'val', whichever the datamodule defines") from err
        if self.reinit and self._init_state is None:  # (what keep_across_rounds keeps is never reset)
            keep = self._kept(pl_module)
            self._init_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()
                                if k.split(".")[0] not in keep}

    def _eval_loader(self, trainer: L.Trainer):
        dm = trainer.datamodule
        return dm.test_dataloader() if self.eval_split == "test" else dm.val_dataloader()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pool = self._pool(trainer)
        last = int(pool.labeled_round.max()) if hasattr(pool, "labeled_round") else 0
        if last > self.completed_rounds:
            raise RuntimeError(
                f"the pool holds labels of round {last} but ActiveLearning has completed only "
                f"{self.completed_rounds} rounds: the checkpoint lacks this callback's state (was it saved "
                "with a different callback?)"
            )
        if self._initial_labeled is None:
            self._initial_labeled = int((pool.labeled_round == 0).sum()) if hasattr(pool, "labeled_round") else None
        out = self.resolved_output_dir(trainer)
        taken = broadcast(trainer, trainer.ckpt_path is None and os.path.exists(os.path.join(out, "rounds.csv")))
        if taken:
            raise ValueError(f"output_dir: {out} already holds the results of another run (rounds.csv); allowed: a "
                             "new folder (the default, the logger's version folder, is new for every run), or "
                             "resume that run with --ckpt_path")
        if self.reinit:  # every rank resets to rank 0's initial weights
            self._init_state = broadcast(trainer, self._init_state)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped:  # a resumed run that had already stopped
            trainer.should_stop = True

    # ---- randomness: a function of (seed, epoch, batch) -----------------------------------------------
    def _reseed(self, trainer: L.Trainer, batch_idx: int) -> None:
        s = ((self.resolved_seed() * _MIX + trainer.current_epoch) * _MIX + batch_idx) % (2**32)
        torch.random.default_generator.manual_seed(s)
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # (else torch.manual_seed records a stack)
            torch.cuda.manual_seed_all(s)
        random.seed(s)
        np.random.seed(s)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.reload_dataloaders_every_n_epochs = self._user_reload
        self._reseed(trainer, -1)
        r = self._round_of_epoch(trainer, trainer.current_epoch)
        if self._best.round != r:
            self._best.reset(r)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._reseed(trainer, batch_idx)

    # ---- best-on-validation weights ---------------------------------------------------------------
    def _steps_into_round(self, trainer: L.Trainer, batches_done: int) -> int:
        e = self._epochs_per_round(trainer)
        return (trainer.current_epoch % e) * int(trainer.num_training_batches) + batches_done

    def _measure_val(self, trainer: L.Trainer, module: L.LightningModule, batches_done: int) -> None:
        r = self._round_of_epoch(trainer, trainer.current_epoch)
        sync_buffers(module, skip=getattr(module, "_ddp_params_and_buffers_to_ignore", ()))  # rank 0's statistics
        with outside_inference_mode(grad=False):
            acc = evaluate_accuracy(trainer, module, trainer.datamodule.val_dataloader())["acc"]
        self._best.update(r, acc, self._steps_into_round(trainer, batches_done), module, self._kept(module))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.select_weights != "best_val" or self.steps_per_round is None:
            return
        done, total = batch_idx + 1, int(trainer.num_training_batches)
        every = self.val_every_n_steps or max(1, total // 10)
        if done % every == 0 and done < total:  # (the round's last step is measured at the round end)
            self._measure_val(trainer, pl_module, done)

    # ---- per epoch ------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        r = self._round_of_epoch(trainer, trainer.current_epoch)
        round_end = (trainer.current_epoch + 1) % self._epochs_per_round(trainer) == 0
        if r != self.completed_rounds or r >= self.rounds:
            return  # already done (replayed hook after a restore) or past the last round
        if self.select_weights == "best_val":
            self._measure_val(trainer, pl_module, int(trainer.num_training_batches))
        if round_end:
            with outside_inference_mode(grad=False):
                self._end_round(trainer, pl_module, r)

    # ---- the round end --------------------------------------------------------------------------
    def _stop_reason_before_query(self, labeled: int, acc: float) -> Optional[str]:
        if self.max_labels is not None and labeled >= self.max_labels:
            return f"max_labels {self.max_labels} reached"
        if self.plateau_patience is not None:
            key = f"{self.eval_split}_acc"
            accs = [h[key] for h in self.history] + [acc]
            best, since = -1.0, 0
            for a in accs:
                if a > best + self.plateau_min_delta:
                    best, since = a, 0
                else:
                    since += 1
            if since >= self.plateau_patience:
                return f"accuracy plateau: no gain > {self.plateau_min_delta} in {since} rounds"
        return None

    def _end_round(self, trainer: L.Trainer, module: L.LightningModule, r: int) -> None:
        pool = self._pool(trainer)
        row: dict[str, Any] = {"round": r, "labeled": pool.num_labeled}
        if self.select_weights == "best_val":
            self._best.restore(module)
            row.update(best_val_acc=self._best.acc, best_val_step=self._best.step)
        if self.recalibrate_batchnorm:
            recalibrate_batchnorm(module, self._batchnorm_loader(pool))
        metrics = evaluate_accuracy(trainer, module, self._eval_loader(trainer))
        split, labeled = self.eval_split, pool.num_labeled
        row.update({f"{split}_acc": metrics["acc"], f"{split}_loss": metrics["loss"]})
        query_seconds, queried, extra = 0.0, 0, {}
        stop = self._stop_reason_before_query(labeled, metrics["acc"]) if r < self.rounds - 1 else None
        if r < self.rounds - 1 and stop is None:
            budget = self._budget_n
            if self.max_labels is not None:
                budget = min(budget, self.max_labels - labeled)
            t0 = time.perf_counter()
            picked = self.strategy.select(trainer, module, pool, budget)  # (checks the budget against the pool)
            extra = {k: float(v) for k, v in broadcast(trainer, dict(self.strategy.round_metrics())).items()}
            picked = broadcast(trainer, torch.as_tensor(picked, dtype=torch.long).cpu())
            query_seconds = time.perf_counter() - t0
            if len(picked) != budget:
                raise RuntimeError(f"{type(self.strategy).__name__}.select returned {len(picked)} indices, "
                                   f"expected {budget}")
            if self.stop_below_score is not None:
                if "score_mean" not in extra:
                    raise ValueError(f"stop_below_score: {type(self.strategy).__name__} reports no score_mean in "
                                     "round_metrics(); allowed: a scoring strategy (entropy, margin, BALD, ...)")
                if extra["score_mean"] < self.stop_below_score:
                    stop = f"mean score {extra['score_mean']:.4g} below {self.stop_below_score}"
            if stop is None:
                pool.label(picked, round=r + 1)
                queried = budget
        row.update(queried=queried, query_seconds=round(query_seconds, 4),
                   train_steps=self._epochs_per_round(trainer) * int(trainer.num_training_batches),
                   strategy=self.strategy.settings()["class"].rsplit(".", 1)[-1], **extra)
        if stop is not None:
            row["stopped"] = stop
        row["epoch"] = trainer.current_epoch
        self.history.append(row)
        self.completed_rounds = r + 1
        line = (f"[active] round {r}: labeled={labeled} {split}_acc={metrics['acc']:.4f} "
                f"queried={queried} query_seconds={query_seconds:.2f}")
        line += "".join(f" {k}={v:.4g}" for k, v in extra.items())
        if stop is not None:
            line += f"; stopping: {stop}"
        bar = trainer.progress_bar_callback
        if bar is not None and trainer.is_global_zero:
            bar.print(line)  # on its own line, not glued to the progress bar
        elif bar is None:
            rank_zero_info(line)
        scalars = {f"active/{split}_acc": metrics["acc"], f"active/{split}_loss": metrics["loss"],
                   "active/query_seconds": query_seconds, "active/round": r}
        scalars.update({f"active/{k}": v for k, v in extra.items()})
        if self.select_weights == "best_val":
            scalars["active/best_val_acc"] = self._best.acc
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=labeled)
        if stop is not None:
            self.stopped = stop
            trainer.should_stop = True
        if trainer.is_global_zero:
            self._write_outputs(trainer, pool)
        if stop is None and queried:
            if self.reinit:
                self._reset(trainer, module)
            trainer.reload_dataloaders_every_n_epochs = 1  # next epoch iterates the new labeled set
        trainer.strategy.barrier("active_learning_round_end")

    @staticmethod
    def _batchnorm_loader(pool):
        loader = pool.labeled_dataloader(train=False)
        return torch.utils.data.DataLoader(loader.dataset, batch_size=pool.batch_size, shuffle=False,
                                           num_workers=loader.num_workers)

    @staticmethod
    def _kept(module: L.LightningModule) -> tuple[str, ...]:
        """The module's ``keep_across_rounds`` names, checked against its top-level names."""
        keep = getattr(module, "keep_across_rounds", ())
        keep = (keep,) if isinstance(keep, str) else tuple(keep)
        top = {name.split(".")[0] for name, _ in module.named_children()}
        top |= {k.split(".")[0] for k in module.state_dict()}
        top |= {name.split(".")[0] for name, _ in module.named_parameters()}
        unknown = [k for k in keep if k not in top]
        if unknown:
            raise ValueError(f"{type(module).__name__}.keep_across_rounds names {unknown}, which are not top-level "
                             f"children, parameters or buffers of the module (those are {sorted(top)})")
        return keep

    def _reset(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Initial weights and fresh optimizers/schedulers, except what ``keep_across_rounds`` keeps."""
        assert self._init_state is not None
        keep = self._kept(module)

        def kept(name: str) -> bool:
            return name.split(".")[0] in keep

        state = {k: v for k, v in self._init_state.items() if not kept(k)}
        with torch.no_grad():
            missing, unexpected = module.load_state_dict(state, strict=False)
        missing = [k for k in missing if not kept(k)]
        if missing or unexpected:
            raise RuntimeError(f"ActiveLearning could not reset {type(module).__name__} to its initial state: "
                               f"missing keys {missing}, unexpected keys {unexpected}")

        def param_ids(opt: torch.optim.Optimizer) -> list[list[int]]:
            return [[id(p) for p in group["params"]] for group in opt.param_groups]

        # the optimizer states to carry over: taken before the rebuild, matched by position afterwards
        old = [(param_ids(opt), opt.state_dict()) for opt in trainer.optimizers] if keep else []
        trainer.strategy.setup_optimizers(trainer)  # fresh optimizers and schedulers
        if not old:
            return
        kept_ids = {id(p) for name, p in module.named_parameters() if kept(name)}
        for opt, (ids, opt_state) in zip(trainer.optimizers, old):
            new_ids = param_ids(opt)
            flat = [i for group in new_ids for i in group]
            if flat and new_ids == ids and all(i in kept_ids for i in flat):
                opt.load_state_dict(opt_state)

    # ---- outputs --------------------------------------------------------------------------------
    def resolved_output_dir(self, trainer: L.Trainer) -> str:
        return self.output_dir or trainer.log_dir or trainer.default_root_dir

    def record(self, pool) -> dict[str, Any]:
        """What ``labeled.json`` holds: the labeled indices, the round each was labeled in, the dataset
        and the experiment's settings."""
        idx = pool.labeled_indices
        settings = self.settings()
        settings["initial_labeled"] = self._initial_labeled
        return {"dataset": getattr(pool, "dataset_name", type(pool).__name__), "num_train": pool.num_train,
                "rounds_completed": self.completed_rounds, "stopped": self.stopped, "settings": settings,
                "indices": idx.tolist(), "rounds": pool.labeled_round[idx].tolist()}

    def _write_outputs(self, trainer: L.Trainer, pool) -> None:
        out = self.resolved_output_dir(trainer)
        os.makedirs(out, exist_ok=True)
        remove_stale_tmp(out)  # (a kill during an earlier write)
        write_rounds_csv(os.path.join(out, "rounds.csv"), self.history)
        record = self.record(pool)
        write_labeled_json(os.path.join(out, "labeled.json"), record)
        rows = [{k: str(v) for k, v in h.items()} for h in self.history]
        plot_learning_curve(os.path.join(out, "learning_curve.png"), record, rows, f"{self.eval_split}_acc",
                            find_random_baselines(out, record))

    # ---- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"settings": self.flat_settings(), "completed_rounds": self.completed_rounds,
                "history": list(self.history), "stopped": self.stopped, "init_state": self._init_state,
                "best": self._best.state_dict(), "strategy": self.strategy.state_dict(),
                "initial_labeled": self._initial_labeled}

    def check_resume(self, saved: dict[str, Any]) -> None:
        """One line naming every setting that differs from the checkpoint's."""
        now = self.flat_settings()
        changed = [f"{k} {json.dumps(saved.get(k))} -> {json.dumps(now.get(k))}"
                   for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if changed:
            raise ValueError("ckpt_path: the checkpoint's active-learning experiment differs: " + "; ".join(changed)
                             + "; allowed: resume with the checkpoint's settings, or start a new run without "
                             "--ckpt_path")

    def load_state_dict(self, state_dict: dict) -> None:
        if "settings" in state_dict:
            self.check_resume(state_dict["settings"])
        self.completed_rounds = int(state_dict["completed_rounds"])
        self.history = list(state_dict["history"])
        self.stopped = state_dict.get("stopped")
        if state_dict.get("init_state") is not None:
            self._init_state = state_dict["init_state"]
        if state_dict.get("best") is not None:
            self._best.load_state_dict(state_dict["best"])
        self._initial_labeled = state_dict.get("initial_labeled", self._initial_labeled)
        self.strategy.load_state_dict(state_dict.get("strategy", {}))


__all__: Sequence[str] = ["ActiveLearning", "config_options"]

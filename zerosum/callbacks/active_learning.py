"""Pool-based active learning as one Lightning callback.

Design: **one** ``trainer.fit`` whose epochs are grouped into rounds of ``epochs_per_round`` epochs.
At the end of a round's last epoch (``on_train_epoch_end``, after that epoch's validation) the
callback

1. evaluates the model on the test (or val) split, sharded over ranks,
2. asks the strategy for ``budget`` unlabeled indices (``strategy.select``), broadcasts rank 0's
   choice (every rank labels the same samples) and labels them in the pool datamodule,
3. writes ``rounds.csv``, ``labeled.json`` and ``learning_curve.png`` atomically (temp file +
   ``os.replace``) and logs ``active/*`` scalars against the number of labels,
4. resets the weights to their initial values and rebuilds the optimizers and schedulers
   (``reinit=True``, as VAAL's code retrains from scratch every split), except for the top-level
   children a module names in its class attribute ``keep_across_rounds`` (e.g. SRAL's RL agent,
   which learns across rounds): those keep their weights, and the optimizers over only their
   parameters keep their state, and
5. asks Lightning to reload the train dataloader, so the next epoch iterates the new labeled set.

Why this design: Lightning 2.x has no custom loops, and one ``fit`` keeps everything Lightning gives
for free: loggers, a single DDP process group, checkpointing and ``--ckpt_path last``. The
alternatives (a Python loop calling ``fit`` per round, or a subclassed fit loop) restart the
strategy/DDP setup every round or depend on private loop internals, and neither resumes with the
CLI's ``--ckpt_path``.

Resume. The callback state (rounds done, per-round results, the initial weights, the strategy's
state) and the pool (:class:`~zerosum.datamodules.ActivePoolDataModule` ``state_dict``) are in every
checkpoint. Randomness is made a function of ``(seed, epoch)``: the labeled set is shuffled by a
sampler seeded per epoch and the global RNGs are re-seeded at every epoch start, so a run resumed
from an epoch-end checkpoint replays exactly the batches, augmentations and dropout masks of an
uninterrupted run. The round end is idempotent (it runs only if the round is not yet recorded in
the state), so if Lightning replays ``on_train_epoch_end`` after a restore nothing is done twice,
and a kill mid-query leaves the last checkpoint's pool untouched (the query is simply redone);
``label`` refuses already-labeled indices.

Lightning validates under ``inference_mode``; the round end runs outside it (with gradients off,
unless a strategy turns them on), so strategies that train networks may use autograd.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import time
from typing import Literal, Optional, Union

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from zerosum.inference import evaluate_accuracy, outside_inference_mode
from zerosum.parallel import broadcast
from zerosum.query.base import QueryStrategy


def _atomic_write(path: str, data: Union[str, bytes]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ActiveLearning(L.Callback):
    """Run pool-based active learning inside ``trainer.fit`` (see the module docstring).

    Args:
        strategy: the query strategy (``zerosum.query.*Strategy`` or your own ``QueryStrategy``).
        rounds: training rounds; a query follows every round but the last, so the final labeled set
            is ``initial + (rounds - 1) * budget``. Sets ``max_epochs = rounds * epochs_per_round``.
        epochs_per_round: training epochs per round.
        budget: samples labeled per query: a count (int >= 1) or a fraction in (0, 1) of the training
            split (VAAL: 0.05).
        reinit: reset weights (to the initial ones) and optimizers/schedulers after every query. A
            module may declare ``keep_across_rounds: tuple[str, ...]``, names of top-level children
            (submodules, or parameters/buffers named up to their first ``.``) that the reset leaves
            alone; a rebuilt optimizer whose parameters all lie in kept children (the same parameters,
            in the same order, as the old optimizer at its position) gets the old one's state back.
            Schedulers are always rebuilt.
        eval_split: split evaluated at every round's end: ``"test"`` or ``"val"``.
        output_dir: where ``rounds.csv``, ``labeled.json`` and ``learning_curve.png`` go (default: the
            trainer's ``log_dir``).
        seed: base of the per-epoch seeds (default: the ``seed_everything`` seed, else 0).

    The datamodule must be an :class:`~zerosum.datamodules.ActivePoolDataModule` (or offer its
    ``label``/``unlabeled_dataloader``/``num_train``/``num_labeled`` API); under ``fast_dev_run`` the
    single epoch is one round followed by one query.
    """

    def __init__(
        self,
        strategy: QueryStrategy,
        rounds: int,
        epochs_per_round: int,
        budget: Union[int, float],
        reinit: bool = True,
        eval_split: Literal["test", "val"] = "test",
        output_dir: Optional[str] = None,
        seed: Optional[int] = None,
    ):
        if not isinstance(strategy, QueryStrategy):
            raise TypeError(f"strategy must be a zerosum.query.QueryStrategy, got {type(strategy).__name__}")
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        if epochs_per_round < 1:
            raise ValueError(f"epochs_per_round must be >= 1, got {epochs_per_round}")
        if isinstance(budget, bool) or not (
            (isinstance(budget, int) and budget >= 1) or (isinstance(budget, float) and 0 < budget < 1)
        ):
            raise ValueError(f"budget must be a count >= 1 (int) or a fraction in (0, 1) (float), got {budget!r}")
        if eval_split not in ("test", "val"):
            raise ValueError(f"eval_split must be 'test' or 'val', got {eval_split!r}")
        self.strategy, self.rounds, self.epochs_per_round = strategy, int(rounds), int(epochs_per_round)
        self.budget, self.reinit, self.eval_split, self.output_dir = budget, reinit, eval_split, output_dir
        self.seed = seed
        # checkpointed state
        self.completed_rounds = 0
        self.history: list[dict] = []
        self._init_state: Optional[dict] = None
        # run-time
        self._budget_n: Optional[int] = None
        self._user_reload = 0

    # ---- setup ----------------------------------------------------------------------------------
    def _pool(self, trainer: L.Trainer):
        pool = trainer.datamodule
        needed = ("label", "unlabeled_dataloader", "num_train", "num_labeled", "num_unlabeled")
        if pool is None or not all(hasattr(pool, a) for a in needed):
            raise TypeError(
                "ActiveLearning needs the datamodule to be a pool: wrap it as "
                "zerosum.datamodules.ActivePoolDataModule(datamodule=...), got "
                f"{type(pool).__name__ if pool is not None else 'no datamodule'}"
            )
        return pool

    def _round_epochs(self, trainer: L.Trainer) -> int:
        return 1 if trainer.fast_dev_run else self.epochs_per_round

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        pool = self._pool(trainer)
        n = pool.num_train
        self._budget_n = self.budget if isinstance(self.budget, int) else max(1, int(round(self.budget * n)))
        need = pool.num_labeled + (self.rounds - 1) * self._budget_n
        if self.completed_rounds == 0 and need > n:
            raise ValueError(
                f"ActiveLearning: {pool.num_labeled} initial labels + (rounds - 1) = {self.rounds - 1} queries x "
                f"budget {self._budget_n} = {need} exceeds the training split ({n} samples); lower rounds or budget"
            )
        if not trainer.fast_dev_run:
            total = self.rounds * self.epochs_per_round
            if trainer.max_epochs != total:
                rank_zero_info(f"ActiveLearning: max_epochs set to rounds x epochs_per_round = {total}")
            trainer.fit_loop.max_epochs = total
        self._user_reload = trainer.reload_dataloaders_every_n_epochs
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        if self.reinit and self._init_state is None:  # (what keep_across_rounds keeps is never reset)
            keep = self._kept(pl_module)
            self._init_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()
                                if k.split(".")[0] not in keep}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pool = self._pool(trainer)
        last = int(pool.labeled_round.max()) if hasattr(pool, "labeled_round") else 0
        if last > self.completed_rounds:
            raise RuntimeError(
                f"the pool holds labels of round {last} but ActiveLearning has completed only "
                f"{self.completed_rounds} rounds: the checkpoint lacks this callback's state (was it saved "
                "with a different callback?)"
            )
        if self.reinit:  # every rank resets to rank 0's initial weights
            self._init_state = broadcast(trainer, self._init_state)

    # ---- per epoch ------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.reload_dataloaders_every_n_epochs = self._user_reload
        s = (int(self.seed) * 1_000_003 + trainer.current_epoch) % (2**32)
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        e = self._round_epochs(trainer)
        if (trainer.current_epoch + 1) % e:
            return
        r = (trainer.current_epoch + 1) // e - 1
        if r != self.completed_rounds or r >= self.rounds:
            return  # already done (replayed hook after a restore) or past the last round
        with outside_inference_mode(grad=False):
            self._end_round(trainer, pl_module, r)

    # ---- the round end --------------------------------------------------------------------------
    def _end_round(self, trainer: L.Trainer, module: L.LightningModule, r: int) -> None:
        pool = self._pool(trainer)
        dm = trainer.datamodule
        loader = dm.test_dataloader() if self.eval_split == "test" else dm.val_dataloader()
        metrics = evaluate_accuracy(trainer, module, loader)
        labeled = pool.num_labeled
        query_seconds, queried = 0.0, 0
        if r < self.rounds - 1:
            budget = self._budget_n  # select checks it against the unlabeled pool (QueryStrategy.check_budget)
            t0 = time.perf_counter()
            picked = self.strategy.select(trainer, module, pool, budget)
            picked = broadcast(trainer, torch.as_tensor(picked, dtype=torch.long).cpu())
            query_seconds = time.perf_counter() - t0
            if len(picked) != budget:
                raise RuntimeError(f"{type(self.strategy).__name__}.select returned {len(picked)} indices, expected {budget}")
            pool.label(picked, round=r + 1)
            queried = budget
        split = self.eval_split
        row = {"round": r, "labeled": labeled, f"{split}_acc": metrics["acc"], f"{split}_loss": metrics["loss"],
               "queried": queried, "query_seconds": round(query_seconds, 4), "epoch": trainer.current_epoch}
        self.history.append(row)
        self.completed_rounds = r + 1
        line = (f"[active] round {r}: labeled={labeled} {split}_acc={metrics['acc']:.4f} "
                f"queried={queried} query_seconds={query_seconds:.2f}")
        bar = trainer.progress_bar_callback
        if bar is not None and trainer.is_global_zero:
            bar.print(line)  # on its own line, not glued to the progress bar
        elif bar is None:
            rank_zero_info(line)
        for logger in trainer.loggers:
            logger.log_metrics({f"active/{split}_acc": metrics["acc"], f"active/{split}_loss": metrics["loss"],
                                "active/query_seconds": query_seconds, "active/round": r}, step=labeled)
        if trainer.is_global_zero:
            self._write_outputs(trainer, pool)
        if queried:
            if self.reinit:
                self._reset(trainer, module)
            trainer.reload_dataloaders_every_n_epochs = 1  # next epoch iterates the new labeled set
        trainer.strategy.barrier("active_learning_round_end")

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

    def _write_outputs(self, trainer: L.Trainer, pool) -> None:
        out = self.resolved_output_dir(trainer)
        os.makedirs(out, exist_ok=True)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.history[0]))
        writer.writeheader()
        writer.writerows(self.history)
        _atomic_write(os.path.join(out, "rounds.csv"), buf.getvalue())
        idx = pool.labeled_indices
        record = {"num_train": pool.num_train, "rounds_completed": self.completed_rounds,
                  "indices": idx.tolist(), "rounds": pool.labeled_round[idx].tolist()}
        _atomic_write(os.path.join(out, "labeled.json"), json.dumps(record))
        self._plot(os.path.join(out, "learning_curve.png"))

    def _plot(self, path: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        key = f"{self.eval_split}_acc"
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([h["labeled"] for h in self.history], [h[key] for h in self.history], "o-",
                label=type(self.strategy).__name__)
        ax.set_xlabel("labeled samples")
        ax.set_ylabel(f"{self.eval_split} accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        _atomic_write(path, buf.getvalue())

    # ---- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"completed_rounds": self.completed_rounds, "history": list(self.history),
                "init_state": self._init_state, "strategy": self.strategy.state_dict(), "seed": self.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        self.completed_rounds = int(state_dict["completed_rounds"])
        self.history = list(state_dict["history"])
        if state_dict.get("init_state") is not None:
            self._init_state = state_dict["init_state"]
        self.seed = state_dict.get("seed", self.seed)
        self.strategy.load_state_dict(state_dict.get("strategy", {}))

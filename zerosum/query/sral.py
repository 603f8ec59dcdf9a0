"""SRAL's selection procedure (Jiu et al., J. Graphics 2026, section 2) as a query strategy.

One call of :meth:`SRALStrategy.select` labels the callback's per-round ``budget`` (the paper's
reporting step, 1000 labels; the total budget ``B`` is ``initial + (rounds - 1) * budget``). The
budget is filled in chunks of the *small budget* ``b`` (``small_budget``, paper 300; the last chunk
of a round takes the remainder). For every chunk:

1. **Pre-ranking**: the unlabeled pool (minus this round's picks) is scored by the selection
   classifier's predictive entropy, sharded over ranks and gathered (``pre_rank: entropy``), or put
   in a seeded random order (``pre_rank: random``: the SRAL+Random ablation). The penultimate
   features of the pool are taken in the same pass; their mean and spread standardise the states.
2. **MDP walk**: candidates are taken from the top in groups of ``n`` (``module.group_size``). The
   state ``S`` is the ``(n, d)`` (standardised) feature matrix of the group under the *current*
   selection classifier (Eq. 1), ``S'`` that of the next group, computed after this step's update, so
   the state is refreshed after each accepted group. The actor gives ``a = pi(S) + noise`` in
   [-1, 1]; ``a_i >= 0`` selects candidate ``i`` (when a group selects more than the chunk still
   needs, the largest actions win).
3. **Reward** (Eq. 2): if anything was selected, the selection classifier takes a *fresh probe*,
   ``probe_steps`` plain SGD steps (lr ``probe_lr``, no momentum, no weight decay, BatchNorm frozen in
   eval mode) on the picked samples alone, from its current weights ``phi_{i-1}``; the reward is
   ``r = Acc(phi_i) - Acc(phi_{i-1})`` on the first ``reward_val_size`` samples of the validation split,
   in percentage points. Both accuracies are read on the same samples, so the reward's standard error
   is that of a paired difference, ``100 sd(c_i - c_{i-1}) / sqrt(N)`` over the per-sample
   correctness ``c``; it is recorded with every reward. Nothing selected: nothing changes, ``r = 0``.
   An accepted group's update is kept (``phi_i`` is where the next probe starts, as the MDP of the
   paper has it); with ``negative_reward: return`` (the paper's Fig. 1 text) a group whose reward is
   negative is undone and its samples go back to the pool, to be walked again in a later pass.
   ``(S, a, r, S')`` goes to the replay buffer and, once it is past warm-up, ``updates_per_step`` DDPG
   updates follow (Eqs. 4, 6, 7).
4. When the chunk is full its samples count as labeled: the selection classifier is retrained for
   ``retrain_epochs`` epochs on the grown labeled set (SGD lr ``retrain_lr``, momentum 0.9, weight
   decay 5e-4, section 4.1) and the pool is re-ranked (next chunk).

``probe_scope``: ``"head"`` (default) moves only the classifier's linear head, on the penultimate
features, so the pool and validation features are computed once per chunk and a reward costs a
matrix product; ``"all"`` moves every weight (the backbone too) and re-reads the validation images
and the next states after every accepted probe: ~``reward_val_size`` forward passes per step (about
20 pool passes per round on cifar10_jpg, against the 10x-entropy budget of ``benchmarks/sral_speed.py``).
The paper does not say what ``phi_i`` is beyond "the model after action a".

Candidates rejected in a pass are walked again in a further pass (they stay unlabeled); after
``max_passes`` passes the rest of the chunk is filled in ranking order, so ``select`` always returns
exactly ``budget`` indices.

What the agent did is in :attr:`SRALStrategy.last_stats` and :meth:`SRALStrategy.round_metrics`
(reward mean, spread and standard error, critic loss, selection rate, DDPG updates: logged by
:class:`~zerosum.callbacks.ActiveLearning` as ``active/sral_*`` and written to ``rounds.csv``), and
as curves in the trainer's loggers (``sral/*`` every ``log_every`` steps, against the number of
transitions the agent has seen).

The strategy keeps the walk's bookkeeping (ranking, groups, passes, fallback, rewards as accuracy
changes); every decision and update is the module's (:class:`zerosum.modules.SRAL` plays them as its
game): ``act``, ``probe``, ``retrain``, ``remember``, ``agent_step`` and ``selection_state``. Any module
offering :data:`MODULE_INTERFACE` can be used; no module is imported here.

DDP: every rank runs the same walk on the gathered scores and features, with the same seeded
generator (seeded by ``seed`` and the labeled count, so a resumed run redraws the same noise) and
the full (unsharded) reward subset. The selection of every step and its reward are broadcast from
rank 0, and at the end rank 0's agent and selection classifier are broadcast, so ranks stay
identical even where floating point is not bitwise reproducible (GPUs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Literal, Optional

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zerosum.inference import eval_mode, map_pool
from zerosum.parallel import broadcast
from zerosum.query.base import QueryStrategy
from zerosum.query.uncertainty import entropy_score

# what SRALStrategy asks of the module (zerosum.modules.SRAL offers it)
MODULE_INTERFACE = ("selector", "group_size", "act", "probe", "retrain", "remember", "agent_step", "selection_state",
                    "agent", "replay")  # (agent.updates and replay.total: the counters of the curves)


def check_interface(module) -> None:
    """TypeError naming what ``module`` lacks of :data:`MODULE_INTERFACE`."""
    missing = [name for name in MODULE_INTERFACE if not hasattr(module, name)]
    if missing:
        raise TypeError(f"SRALStrategy needs a module that plays SRAL's game (zerosum.modules.SRAL); "
                        f"{type(module).__name__} lacks {', '.join(missing)}")


@dataclass
class Walk:
    """One ``select`` call's context and, per chunk (set with ``dataclasses.replace``), what its walk covers."""

    trainer: Optional[L.Trainer]
    module: Any  # offers MODULE_INTERFACE
    net: nn.Module  # module.selector
    datamodule: Any
    device: torch.device
    val_x: torch.Tensor  # the reward subset of the validation split
    val_y: torch.Tensor
    generator: torch.Generator
    stats: dict
    order: Optional[torch.Tensor] = None  # per chunk: pool indices in walking order,
    labels: Optional[torch.Tensor] = None  # their labels (the oracle's answers, read only for picks),
    feats: Optional[torch.Tensor] = None  # their features at ranking time,
    feat_mean: Optional[torch.Tensor] = None  # the statistics that standardise a state,
    feat_std: Optional[torch.Tensor] = None
    val_feats: Optional[torch.Tensor] = None  # (probe_scope "head") the validation features,
    chunk: int = 0  # how many to select,
    labeled: list[int] = field(default_factory=list)  # and the labeled indices so far


class SRALStrategy(QueryStrategy):
    """Reinforcement active learning with entropy pre-ranking; needs a module offering
    :data:`MODULE_INTERFACE` (:class:`zerosum.modules.SRAL`).

    Args:
        small_budget: b, samples selected between two retrain/re-rank steps (paper: 300).
        pre_rank: "entropy" (SRAL) or "random" (the SRAL+Random ablation).
        reward_val_size: validation samples the reward is measured on (the first ones of the split).
        probe_steps: plain SGD steps of the probe before a reward.
        probe_lr: learning rate of the probe (0: every reward is exactly 0; at 0.01 the rewards' spread over a query is their standard error, noise, at 0.1 about 4 times it on digits).
        probe_scope: "head" (the linear head on fixed features; fast) or "all" (every weight).
        negative_reward: "keep" the picks of a negative-reward group, or "return" them to the pool and undo the probe (paper's Fig. 1 text).
        retrain_epochs: epochs of the selection classifier's retraining after each chunk.
        retrain_batch_size: batch size of that retraining.
        retrain_lr: learning rate of that retraining (SGD, momentum 0.9, weight decay 5e-4).
        updates_per_step: DDPG updates per stored transition, once the replay is past warm-up.
        max_passes: walks over the ranking per chunk before falling back to ranking order.
        log_every: steps between two points of the sral/* curves in the trainer's loggers.
        pool_cache_mb: memory for the pool's images between the rankings of one select (0: read the data pipeline every time).
        seed: base seed of the exploration noise, replay sampling and random pre-ranking.
    """

    def __init__(
        self,
        small_budget: int = 300,
        pre_rank: Literal["entropy", "random"] = "entropy",
        reward_val_size: int = 1000,
        probe_steps: int = 1,
        probe_lr: float = 0.1,
        probe_scope: Literal["head", "all"] = "head",
        negative_reward: Literal["keep", "return"] = "keep",
        retrain_epochs: int = 1,
        retrain_batch_size: int = 128,
        retrain_lr: float = 0.01,
        updates_per_step: int = 1,
        max_passes: int = 3,
        log_every: int = 20,
        pool_cache_mb: int = 1024,
        seed: int = 0,
    ):
        for name, value, allowed in (("pre_rank", pre_rank, ("entropy", "random")),
                                     ("probe_scope", probe_scope, ("head", "all")),
                                     ("negative_reward", negative_reward, ("keep", "return"))):
            if value not in allowed:
                raise ValueError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")
        for name, value in (("small_budget", small_budget), ("reward_val_size", reward_val_size),
                            ("max_passes", max_passes), ("retrain_batch_size", retrain_batch_size),
                            ("log_every", log_every)):
            if value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}; allowed: 1, 2, ...")
        for name, value in (("probe_steps", probe_steps), ("retrain_epochs", retrain_epochs), ("pool_cache_mb", pool_cache_mb),
                            ("updates_per_step", updates_per_step), ("probe_lr", probe_lr), ("retrain_lr", retrain_lr)):
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}; allowed: 0 or more")
        self.small_budget, self.pre_rank = int(small_budget), pre_rank
        self.reward_val_size = int(reward_val_size)
        self.probe_steps, self.probe_lr, self.probe_scope = int(probe_steps), float(probe_lr), probe_scope
        self.negative_reward = negative_reward
        self.retrain_epochs, self.retrain_batch_size = int(retrain_epochs), int(retrain_batch_size)
        self.retrain_lr = float(retrain_lr)
        self.updates_per_step, self.max_passes = int(updates_per_step), int(max_passes)
        self.log_every, self.pool_cache_mb, self.seed = int(log_every), int(pool_cache_mb), int(seed)
        self.last_stats: dict = {}

    # ---- helpers ----------------------------------------------------------------------------------
    @property
    def head_only(self) -> bool:
        return self.probe_scope == "head"

    @staticmethod
    def _load(dataset, indices, device) -> tuple[torch.Tensor, torch.Tensor]:
        items = [dataset[int(i)] for i in indices]
        x = torch.stack([torch.as_tensor(it[0]) for it in items]).to(device)
        y = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long, device=device)
        return x, y

    @staticmethod
    @torch.no_grad()
    def _features(net: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        with eval_mode(net):
            return torch.cat([net.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def _correct(self, w: Walk) -> torch.Tensor:
        """Per validation sample: does the current selection classifier get it right (0/1 floats)."""
        with eval_mode(w.net):
            if self.head_only:
                logits = w.net.head(w.val_feats)
            else:
                logits = torch.cat([w.net(w.val_x[i:i + 512]) for i in range(0, len(w.val_x), 512)])
        return (logits.argmax(1) == w.val_y).float()

    def _rank(self, trainer, net: nn.Module, pool, exclude: set[int], g: torch.Generator, cache: dict):
        """(pool indices in walking order, their labels, their features): one pass over the pool, one
        backbone forward per image (the logits are the head on the features). The first pass of a
        ``select`` also keeps the pool's (evaluation-transformed) images in ``cache`` when they fit in
        ``pool_cache_mb``, so the re-rankings after each chunk read memory, not the data pipeline."""
        head = getattr(net, "head", None)
        keep_inputs = "x" not in cache and self.pool_cache_mb > 0
        shapes: dict = {}

        def entropy_labels_features(m, batch):
            x, y = batch[0], batch[1]
            f = m.features(x)
            logits = head(f) if isinstance(head, nn.Module) else m(x)
            shapes.update(d=f.shape[1], x=tuple(x.shape[1:]))
            cols = [entropy_score(logits).unsqueeze(1), y.to(f).unsqueeze(1), f]
            return torch.cat(cols + [x.flatten(1).to(f)] if keep_inputs else cols, dim=1)

        if cache.get("x") is not None:
            left = torch.tensor([int(i) not in exclude for i in cache["indices"]], dtype=torch.bool)
            data = TensorDataset(cache["x"][left], cache["y"][left], cache["indices"][left])
            loader = DataLoader(data, batch_size=pool.unlabeled_dataloader().batch_size or 256)
        else:
            loader = pool.unlabeled_dataloader()
            if keep_inputs:  # the images would not fit: no cache
                sample = loader.dataset[0][0] if len(loader.dataset) else torch.zeros(0)
                keep_inputs = len(loader.dataset) * sample.numel() * 4 <= self.pool_cache_mb * 2**20
        out, _, indices = map_pool(trainer, net, loader, entropy_labels_features)
        out = out.reshape(len(indices), -1)
        if keep_inputs and shapes:
            d = shapes["d"]
            cache.update(x=out[:, 2 + d:].reshape(len(indices), *shapes["x"]).cpu(), y=out[:, 1].long().cpu(),
                         indices=indices.cpu())
            out = out[:, : 2 + d]
        keep = torch.tensor([int(i) not in exclude for i in indices], dtype=torch.bool)
        out, indices = out[keep], indices[keep]
        if self.pre_rank == "entropy":
            order = torch.sort(out[:, 0], descending=True, stable=True).indices
        else:
            order = torch.randperm(len(indices), generator=g)
        return indices[order], out[order, 1].long(), out[order, 2:]

    # ---- the procedure ----------------------------------------------------------------------------
    def select(self, trainer: Optional[L.Trainer], module, pool, budget: int) -> torch.Tensor:
        check_interface(module)
        budget = self.check_budget(pool, budget)
        dm = pool.datamodule
        if getattr(dm, "val_set", None) is None or len(dm.val_set) == 0:
            raise ValueError("val_size: SRALStrategy's reward needs a validation split, the datamodule has none; "
                             "allowed: val_size > 0")
        device = module.device
        net = module.selector
        seed = self.seed * 1_000_003 + pool.num_labeled
        g = torch.Generator().manual_seed(seed)
        val_x, val_y = self._load(dm.val_set, range(min(self.reward_val_size, len(dm.val_set))), device)
        updates_before = int(module.agent.updates)
        context = Walk(trainer, module, net, dm, device, val_x, val_y, g,
                       stats={"steps": 0, "rewards": [], "reward_se": [], "group_sizes": [], "selected_per_step": [],
                              "critic_loss": [], "actor_loss": [], "fallback": 0, "returned": 0, "ddpg_updates": 0})
        labeled = pool.labeled_indices.tolist()
        chosen: list[int] = []
        cache: dict = {}  # the pool's images, kept between the rankings of this select
        was_training = net.training
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            while len(chosen) < budget:
                chunk = min(self.small_budget, budget - len(chosen))
                if len(chosen) + chunk >= budget:  # the last ranking of this select: nothing to keep
                    cache.setdefault("x", None)
                order, labels, feats = self._rank(trainer, net, pool, set(chosen), g, cache)
                labels, feats = labels.to(device), feats.to(device)
                mean, std = feats.mean(0), feats.std(0, unbiased=False).clamp_min(1e-6)
                val_feats = self._features(net, val_x) if self.head_only else None
                chosen += self._walk(replace(context, order=order, labels=labels, feats=feats, feat_mean=mean, feat_std=std,
                                             val_feats=val_feats, chunk=chunk, labeled=labeled + chosen))
                if len(chosen) < budget and self.retrain_epochs:
                    self._retrain(context, labeled + chosen)
        net.train(was_training)
        if trainer is not None and trainer.world_size > 1:  # rank 0's agent and classifier everywhere
            module.load_state_dict(broadcast(trainer, module.selection_state()), strict=False)
        context.stats["ddpg_updates"] = int(module.agent.updates) - updates_before
        context.stats["ddpg_updates_total"] = int(module.agent.updates)
        self.last_stats = context.stats
        return torch.tensor(chosen, dtype=torch.long)

    def _state(self, w: Walk, positions: torch.Tensor, fresh: bool) -> torch.Tensor:
        """Eq. (1): the standardised features of the candidates at ``positions`` of the walking order
        (zero rows pad a short group); ``fresh``: recomputed by the current classifier (its backbone
        moved since the ranking pass), else read from the ranking pass."""
        n = w.module.group_size
        s = torch.zeros(n, w.feats.shape[1], device=w.device)
        if len(positions):
            if fresh:
                x, _ = self._load(w.datamodule.train_set_eval, w.order[positions].tolist(), w.device)
                f = self._features(w.net, x)
            else:
                f = w.feats[positions]
            s[: len(positions)] = (f - w.feat_mean) / w.feat_std
        return s

    def _walk(self, w: Walk) -> list[int]:
        """Walk ``w.order`` in groups of ``n`` until ``w.chunk`` samples are selected (or
        ``max_passes`` passes are done, then fill in ranking order); returns the picks in ranking order."""
        module, n, g = w.module, w.module.group_size, w.generator
        picked = torch.zeros(len(w.order), dtype=torch.bool)
        correct = self._correct(w)
        moved = False  # has the backbone moved since the ranking pass (probe_scope "all")
        window: list[int] = []
        for _ in range(self.max_passes):
            cand = (~picked).nonzero().squeeze(1)
            groups = [cand[i:i + n] for i in range(0, len(cand), n)]
            s = self._state(w, groups[0], moved) if groups else None
            for k, group in enumerate(groups):
                need = w.chunk - int(picked.sum())
                if need <= 0:
                    break
                a = module.act(s, g)
                a[len(group):] = -1.0  # padding rows of a short last group are never selected
                sel = a[: len(group)].cpu() >= 0
                if int(sel.sum()) > need:  # keep the largest actions
                    top = torch.sort(a[: len(group)].cpu(), descending=True, stable=True).indices[:need]
                    sel = torch.zeros_like(sel)
                    sel[top] = True
                sel = broadcast(w.trainer, sel)
                reward, se = 0.0, 0.0
                if sel.any():
                    reward, se, correct, moved = self._probe(w, group[sel], picked, correct, moved)
                nxt = groups[k + 1] if k + 1 < len(groups) else group[:0]
                s2 = self._state(w, nxt, moved)  # after this step's update: the refreshed state
                module.remember(s, a, reward, s2)
                losses = [out for out in (module.agent_step(g) for _ in range(self.updates_per_step)) if out]
                for key in ("critic_loss", "actor_loss"):  # this step's mean (NaN: no update, warm-up)
                    w.stats[key].append(sum(o[key] for o in losses) / len(losses) if losses else math.nan)
                w.stats["steps"] += 1
                w.stats["rewards"].append(reward)
                w.stats["reward_se"].append(se)
                w.stats["group_sizes"].append(len(group))
                w.stats["selected_per_step"].append(int(sel.sum()))
                window.append(w.stats["steps"] - 1)
                if len(window) >= self.log_every:
                    self._log(w, window)
                    window = []
                s = s2
            if int(picked.sum()) >= w.chunk:
                break
        if window:
            self._log(w, window)
        need = w.chunk - int(picked.sum())
        if need > 0:  # fallback: ranking order
            rest = (~picked).nonzero().squeeze(1)[:need]
            picked[rest] = True
            w.stats["fallback"] += len(rest)
        # ranking order of the picks (the order they were walked in does not matter to the caller)
        return w.order[picked.nonzero().squeeze(1)].tolist()

    def _probe(self, w: Walk, positions: torch.Tensor, picked: torch.Tensor, correct: torch.Tensor, moved: bool):
        """Probe on the picks at ``positions``, reward (Eq. 2) and its standard error; accept (mark
        picked, keep ``phi_i``) or, for a negative reward under ``negative_reward: return``, undo.
        Returns ``(reward, se, correctness now, backbone moved)``."""
        new = w.order[positions].tolist()
        if self.head_only:
            x, y = w.feats[positions], w.labels[positions]
        else:
            x, y = self._load(w.datamodule.train_set_eval, new, w.device)
        undo = self.negative_reward == "return"
        scope = w.net.head if self.head_only else w.net
        saved = {k: v.clone() for k, v in scope.state_dict().items()} if undo else None
        w.module.probe(x, y, self.probe_lr, self.probe_steps, head_only=self.head_only)
        after = self._correct(w)
        diff = after - correct  # paired: the same validation samples before and after
        reward = 100.0 * int(diff.sum()) / len(diff)  # exact: a multiple of 100 / N
        se = 100.0 * float(diff.std(unbiased=False)) / math.sqrt(len(diff)) if len(diff) else 0.0
        reward, se = (float(v) for v in broadcast(w.trainer, torch.tensor([reward, se], dtype=torch.float64)))
        if undo and reward < 0:
            scope.load_state_dict(saved)
            w.stats["returned"] += len(new)
            return reward, se, correct, moved
        picked[positions] = True
        return reward, se, after, moved or (not self.head_only and self.probe_lr > 0 and self.probe_steps > 0)

    def _retrain(self, w: Walk, indices: list[int]) -> None:
        """Retrain the selection classifier on the grown labeled set, ``retrain_epochs`` epochs of
        shuffled batches (evaluation transforms: no augmentation RNG, so every rank computes the same)."""
        w.module.retrain(self._batches(w, indices), self.retrain_lr)

    def _batches(self, w: Walk, indices: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.retrain_epochs):
            perm = torch.randperm(len(indices), generator=w.generator)
            for i in range(0, len(indices), self.retrain_batch_size):
                batch = [indices[j] for j in perm[i:i + self.retrain_batch_size]]
                yield self._load(w.datamodule.train_set_eval, batch, w.device)

    # ---- what the agent did -----------------------------------------------------------------------
    @staticmethod
    def summary(stats: dict, steps: Optional[list[int]] = None) -> dict[str, float]:
        """Reward mean / sd / mean standard error (percentage points), selection rate (selected /
        candidates walked), mean critic and actor loss, of all steps or of ``steps``."""
        idx = range(stats["steps"]) if steps is None else steps
        r = torch.tensor([stats["rewards"][i] for i in idx], dtype=torch.float64)
        se = torch.tensor([stats["reward_se"][i] for i in idx], dtype=torch.float64)
        sel = sum(stats["selected_per_step"][i] for i in idx)
        cand = sum(stats["group_sizes"][i] for i in idx)
        out = {"reward_mean": float(r.mean()) if len(r) else 0.0,
               "reward_sd": float(r.std(unbiased=False)) if len(r) else 0.0,
               "reward_se": float(se.mean()) if len(se) else 0.0,
               "selection_rate": sel / cand if cand else 0.0}
        for key in ("critic_loss", "actor_loss"):
            values = [stats[key][i] for i in idx if not math.isnan(stats[key][i])]
            if values:
                out[key] = sum(values) / len(values)
        return out

    def _log(self, w: Walk, steps: list[int]) -> None:
        """A point of the ``sral/*`` curves: the last ``steps``' summary, the DDPG update count and the
        exploration noise, against the number of transitions the agent has seen."""
        if w.trainer is None or not w.trainer.loggers:
            return
        metrics = {f"sral/{k}": v for k, v in self.summary(w.stats, steps).items()}
        metrics["sral/ddpg_updates"] = float(w.module.agent.updates)
        sigma = getattr(w.module.noise, "sigma", None) if hasattr(w.module, "noise") else None
        if sigma is not None:
            metrics["sral/noise_sigma"] = float(sigma)
        for logger in w.trainer.loggers:
            logger.log_metrics(metrics, step=int(w.module.replay.total))

    def round_metrics(self) -> dict[str, float]:
        """The last selection's summary (``sral_reward_mean``, ``sral_reward_sd``, ``sral_reward_se``,
        ``sral_selection_rate``, ``sral_critic_loss``, ...), its step and DDPG update counts and the
        agent's total updates (empty before the first selection)."""
        if not self.last_stats:
            return {}
        s = self.last_stats
        out = {f"sral_{k}": v for k, v in self.summary(s).items()}
        out.update(sral_steps=float(s["steps"]), sral_ddpg_updates=float(s["ddpg_updates"]),
                   sral_ddpg_updates_total=float(s["ddpg_updates_total"]), sral_fallback=float(s["fallback"]),
                   sral_returned=float(s["returned"]))
        return out

"""SRAL's selection procedure (Jiu et al., J. Graphics 2026, section 2) as a query strategy.

One call of :meth:`SRALStrategy.select` labels the callback's per-round ``budget`` (the paper's
reporting step, 1000 labels; the total budget ``B`` is ``initial + (rounds - 1) * budget``). The
budget is filled in chunks of the *small budget* ``b`` (``small_budget``, paper 300; the last chunk
of a round takes the remainder). For every chunk:

1. **Pre-ranking**: the unlabeled pool (minus this round's picks) is scored by the selection
   classifier's predictive entropy, sharded over ranks and gathered (``pre_rank: entropy``), or put
   in a seeded random order (``pre_rank: random``: the SRAL+Random ablation). The penultimate
   features of the pool are taken in the same pass.
2. **MDP walk**: candidates are taken from the top in groups of ``n`` (``module.group_size``). The
   state ``S`` is the ``(n, d)`` feature matrix of the group (Eq. 1), ``S'`` that of the next group.
   The actor gives ``a = pi(S) + noise`` in [-1, 1]; ``a_i >= 0`` selects candidate ``i`` (when a
   group selects more than the chunk still needs, the largest actions win).
3. **Reward** (Eq. 2): if anything was selected, the selection classifier gets a short update
   (``probe_steps`` SGD steps on the selected samples mixed with ``probe_labeled`` already labeled
   ones, so BatchNorm and the step are not driven by 1-3 images) and ``r = Acc(phi_i) - Acc(phi_{i-1})``
   on a fixed subset of the validation split (``reward_val_size``), in percentage points; nothing
   selected: the classifier is unchanged and ``r = 0``. ``(S, a, r, S')`` goes to the replay buffer
   and, once it is past warm-up, ``updates_per_step`` DDPG updates follow (Eqs. 4, 6, 7).
4. When the chunk is full its samples count as labeled: the selection classifier is retrained for
   ``retrain_epochs`` epochs on the grown labeled set and the pool is re-ranked (next chunk).

Candidates rejected in a pass are walked again in a further pass (they stay unlabeled); after
``max_passes`` passes the rest of the chunk is filled in ranking order, so ``select`` always returns
exactly ``budget`` indices. The paper's Fig. 1 text also returns selected samples with a negative
reward to the pool; that would spend labels the expert already gave, so it is not done here.

The strategy keeps the walk's bookkeeping (ranking, groups, passes, fallback, rewards as accuracy
changes); every decision and update is the module's (:class:`zerosum.modules.SRAL` plays them as its
game): ``act`` (the noisy action on a state), ``probe`` and ``retrain`` (updates of the selection
classifier, with one SGD optimiser made per ``select``: lr ``probe_lr``, momentum 0.9, weight decay
5e-4), ``remember`` and ``agent_step`` (replay, DDPG) and ``selection_state``. Any module offering
those (and ``selector``, ``group_size``) can be used; no module is imported here.

DDP: every rank runs the same walk on the gathered scores and features, with the same seeded
generator (seeded by ``seed`` and the labeled count, so a resumed run redraws the same noise) and
the full (unsharded) reward subset. The selection of every step and its reward are broadcast from
rank 0, and at the end rank 0's agent and selection classifier are broadcast, so ranks stay
identical even where floating point is not bitwise reproducible (GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Literal, Optional

import lightning as L
import torch
from torch import nn

from zerosum.inference import eval_mode, map_pool
from zerosum.parallel import broadcast
from zerosum.query.base import QueryStrategy
from zerosum.query.uncertainty import entropy_score

# what SRALStrategy asks of the module (zerosum.modules.SRAL offers it)
MODULE_INTERFACE = ("selector", "group_size", "act", "probe", "retrain", "remember", "agent_step", "selection_state")


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
    probe_opt: torch.optim.Optimizer  # made once per select, shared by every probe and retrain
    datamodule: Any
    device: torch.device
    val_x: torch.Tensor  # the reward subset of the validation split
    val_y: torch.Tensor
    generator: torch.Generator
    stats: dict
    order: Optional[torch.Tensor] = None  # per chunk: pool indices in walking order,
    feats: Optional[torch.Tensor] = None  # their features (rows of the states, Eq. 1),
    chunk: int = 0  # how many to select,
    labeled: list[int] = field(default_factory=list)  # and the labeled indices so far


class SRALStrategy(QueryStrategy):
    """Reinforcement active learning with entropy pre-ranking; needs a module offering
    :data:`MODULE_INTERFACE` (:class:`zerosum.modules.SRAL`).

    Args:
        small_budget: ``b``, samples selected between two retrain/re-rank steps (paper: 300).
        pre_rank: ``"entropy"`` (SRAL) or ``"random"`` (SRAL+Random ablation).
        reward_val_size: validation samples the reward is measured on (the first ones of the split).
        probe_steps / probe_lr / probe_labeled: the short update before each reward.
        retrain_epochs / retrain_batch_size: the selection classifier's retraining after each chunk.
        updates_per_step: DDPG updates per stored transition (once the replay is past warm-up).
        max_passes: walks over the ranking per chunk before falling back to ranking order.
        seed: base seed of the exploration noise, replay sampling and random pre-ranking.
    """

    def __init__(
        self,
        small_budget: int = 300,
        pre_rank: Literal["entropy", "random"] = "entropy",
        reward_val_size: int = 1000,
        probe_steps: int = 1,
        probe_lr: float = 0.01,
        probe_labeled: int = 32,
        retrain_epochs: int = 1,
        retrain_batch_size: int = 128,
        updates_per_step: int = 1,
        max_passes: int = 3,
        seed: int = 0,
    ):
        if small_budget < 1:
            raise ValueError(f"small_budget (b) must be >= 1, got {small_budget}")
        if pre_rank not in ("entropy", "random"):
            raise ValueError(f"pre_rank must be 'entropy' or 'random', got {pre_rank!r}")
        for name, value in (("reward_val_size", reward_val_size), ("max_passes", max_passes),
                            ("retrain_batch_size", retrain_batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("probe_steps", probe_steps), ("probe_labeled", probe_labeled),
                            ("retrain_epochs", retrain_epochs), ("updates_per_step", updates_per_step)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.small_budget, self.pre_rank = int(small_budget), pre_rank
        self.reward_val_size = int(reward_val_size)
        self.probe_steps, self.probe_lr, self.probe_labeled = int(probe_steps), float(probe_lr), int(probe_labeled)
        self.retrain_epochs, self.retrain_batch_size = int(retrain_epochs), int(retrain_batch_size)
        self.updates_per_step, self.max_passes, self.seed = int(updates_per_step), int(max_passes), int(seed)
        self.last_stats: dict = {}

    # ---- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _load(dataset, indices, device) -> tuple[torch.Tensor, torch.Tensor]:
        items = [dataset[int(i)] for i in indices]
        x = torch.stack([torch.as_tensor(it[0]) for it in items]).to(device)
        y = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long, device=device)
        return x, y

    @staticmethod
    @torch.no_grad()
    def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
        with eval_mode(net):
            correct = sum(int((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                          for i in range(0, len(x), batch_size))
        return 100.0 * correct / max(len(x), 1)

    def _rank(self, trainer, net: nn.Module, pool, exclude: set[int], g: torch.Generator):
        """(pool indices in walking order, their features)."""

        def entropy_and_features(m, batch):
            x = batch[0]
            return torch.cat([entropy_score(m(x)).unsqueeze(1), m.features(x)], dim=1)

        out, _, indices = map_pool(trainer, net, pool.unlabeled_dataloader(), entropy_and_features)
        out = out.reshape(len(indices), -1)
        keep = torch.tensor([int(i) not in exclude for i in indices], dtype=torch.bool)
        out, indices = out[keep], indices[keep]
        if self.pre_rank == "entropy":
            order = torch.sort(out[:, 0], descending=True, stable=True).indices
        else:
            order = torch.randperm(len(indices), generator=g)
        return indices[order], out[order, 1:]

    # ---- the procedure ----------------------------------------------------------------------------
    def select(self, trainer: Optional[L.Trainer], module, pool, budget: int) -> torch.Tensor:
        check_interface(module)
        budget = self.check_budget(pool, budget)
        dm = pool.datamodule
        if getattr(dm, "val_set", None) is None or len(dm.val_set) == 0:
            raise ValueError("SRALStrategy: the reward needs a validation split; set the datamodule's val_size > 0")
        device = module.device
        net = module.selector
        seed = self.seed * 1_000_003 + pool.num_labeled
        g = torch.Generator().manual_seed(seed)
        val_x, val_y = self._load(dm.val_set, range(min(self.reward_val_size, len(dm.val_set))), device)
        # the paper's classifier SGD (section 4.1) at lr probe_lr
        probe_opt = torch.optim.SGD(net.parameters(), lr=self.probe_lr, momentum=0.9, weight_decay=5e-4)
        context = Walk(trainer, module, net, probe_opt, dm, device, val_x, val_y, g,
                       stats={"steps": 0, "rewards": [], "selected_per_step": [], "fallback": 0})
        labeled = pool.labeled_indices.tolist()
        chosen: list[int] = []
        was_training = net.training
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            while len(chosen) < budget:
                chunk = min(self.small_budget, budget - len(chosen))
                order, feats = self._rank(trainer, net, pool, set(chosen), g)
                chosen += self._walk(replace(context, order=order, feats=feats.to(device), chunk=chunk,
                                             labeled=labeled + chosen))
                if len(chosen) < budget and self.retrain_epochs:
                    self._retrain(context, labeled + chosen)
        net.train(was_training)
        if trainer is not None and trainer.world_size > 1:  # rank 0's agent and classifier everywhere
            module.load_state_dict(broadcast(trainer, module.selection_state()), strict=False)
        self.last_stats = context.stats
        return torch.tensor(chosen, dtype=torch.long)

    def _walk(self, w: Walk) -> list[int]:
        """Walk ``w.order`` in groups of ``n`` until ``w.chunk`` samples are selected (or
        ``max_passes`` passes are done, then fill in ranking order); returns the picks in ranking order."""
        module, n, device, g = w.module, w.module.group_size, w.device, w.generator
        picked = torch.zeros(len(w.order), dtype=torch.bool)
        acc = self._accuracy(w.net, w.val_x, w.val_y)

        def state_of(pos: torch.Tensor) -> torch.Tensor:  # Eq. (1), zero rows padding a short group
            s = torch.zeros(n, w.feats.shape[1], device=device)
            s[: len(pos)] = w.feats[pos]
            return s

        for _ in range(self.max_passes):
            cand = (~picked).nonzero().squeeze(1)
            for start in range(0, len(cand), n):
                need = w.chunk - int(picked.sum())
                if need <= 0:
                    break
                group, nxt = cand[start:start + n], cand[start + n:start + 2 * n]
                s, s2 = state_of(group), state_of(nxt)
                a = module.act(s, g)
                a[len(group):] = -1.0  # padding rows of a short last group are never selected
                sel = a[: len(group)].cpu() >= 0
                if int(sel.sum()) > need:  # keep the largest actions
                    top = torch.sort(a[: len(group)].cpu(), descending=True, stable=True).indices[:need]
                    sel = torch.zeros_like(sel)
                    sel[top] = True
                sel = broadcast(w.trainer, sel)
                reward = 0.0
                if sel.any():
                    new = w.order[group[sel]].tolist()
                    x, y = self._load(w.datamodule.train_set_eval, new, device)
                    if self.probe_labeled and w.labeled:
                        pick = torch.randint(len(w.labeled), (self.probe_labeled,), generator=g)
                        lx, ly = self._load(w.datamodule.train_set_eval, [w.labeled[i] for i in pick], device)
                        x, y = torch.cat([x, lx]), torch.cat([y, ly])
                    module.probe(x, y, w.probe_opt, self.probe_steps)
                    new_acc = self._accuracy(w.net, w.val_x, w.val_y)
                    reward, acc = new_acc - acc, new_acc  # Eq. (2), in percentage points
                    picked[group[sel]] = True
                reward = float(broadcast(w.trainer, reward))
                module.remember(s, a, reward, s2)
                for _ in range(self.updates_per_step):
                    module.agent_step(g)
                w.stats["steps"] += 1
                w.stats["rewards"].append(reward)
                w.stats["selected_per_step"].append(int(sel.sum()))
            if int(picked.sum()) >= w.chunk:
                break
        need = w.chunk - int(picked.sum())
        if need > 0:  # fallback: ranking order
            rest = (~picked).nonzero().squeeze(1)[:need]
            picked[rest] = True
            w.stats["fallback"] += len(rest)
        # ranking order of the picks (the order they were walked in does not matter to the caller)
        return w.order[picked.nonzero().squeeze(1)].tolist()

    def _retrain(self, w: Walk, indices: list[int]) -> None:
        """Retrain the selection classifier on the grown labeled set, ``retrain_epochs`` epochs of
        shuffled batches (evaluation transforms: no augmentation RNG, so every rank computes the same)."""
        w.module.retrain(self._batches(w, indices), w.probe_opt)

    def _batches(self, w: Walk, indices: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(indices), generator=w.generator)
        for _ in range(self.retrain_epochs):
            for i in range(0, len(indices), self.retrain_batch_size):
                batch = [indices[j] for j in perm[i:i + self.retrain_batch_size]]
                yield self._load(w.datamodule.train_set_eval, batch, w.device)
            perm = torch.randperm(len(indices), generator=w.generator)

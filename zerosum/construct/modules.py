"""Predict-time LightningModules that build the datasets of Ilyas et al., section 3.

Each ``predict_step`` receives one shard (see :class:`~zerosum.datamodules.ConstructionData`) and
returns ``{"shard", "images", "labels", "orig_labels", "index", ...}``; the
:class:`~zerosum.construct.writer.ShardWriter` callback writes it. Shards already written are skipped
(``None``), so an interrupted run resumes where it stopped.

- :class:`RobustFeatureDataset`: D_R (robust source) or D_NR (standard source), Eq. (6).
- :class:`NonRobustFeatureDataset`: D_rand or D_det, Eq. (7).

The source is a classifier checkpoint (``checkpoint`` + ``source_class``; AdversarialTraining by
default, whose network takes [0, 1] pixels) or a module passed as ``source``.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor, nn

from zerosum.attacks import PGD, refuse_degenerate_attack
from zerosum.construct.inversion import Representation, final_relu, invert_representation
from zerosum.modules.loading import load_module

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "uint8": torch.uint8}


def to_store(images: Tensor, dtype: str) -> Tensor:
    if dtype == "uint8":
        return (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images.to(STORE_DTYPES[dtype])


class DatasetConstruction(L.LightningModule):
    """Shared part: the source model, shard skipping, storage dtype, manifest entries.

    Args:
        checkpoint: Lightning checkpoint of the source classifier (recorded in the manifest).
        source_class: class path used to load ``checkpoint``.
        source: a ready classifier instead of a checkpoint (programmatic use, tests).
        chunk_size: images attacked at once inside a shard (memory bound).
        store_dtype: "float32" (default, exact), "float16" or "uint8" (quantised to 1/255).
        seed: seeds the random choices (start images, random targets); recorded in the manifest.
        keep_best: keep, per sample, the best iterate of the optimisation (lowest loss toward the
            target class, or lowest feature distance) instead of the last one.
    """

    kind: str = ""

    def __init__(self, checkpoint: Optional[str] = None, source_class: str = "zerosum.modules.AdversarialTraining",
                 source: Optional[nn.Module] = None, chunk_size: int = 250, store_dtype: str = "float32", seed: int = 0,
                 keep_best: bool = True):
        super().__init__()
        if (checkpoint is None) == (source is None):
            raise ValueError("checkpoint: give exactly one of checkpoint or source; allowed: checkpoint (a .ckpt path) "
                             "or source (a module)")
        if store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype: {store_dtype!r}; allowed: {', '.join(STORE_DTYPES)}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size: {chunk_size}; allowed: an integer >= 1")
        self.keep_best = keep_best
        if checkpoint is not None:
            source = load_module(checkpoint, source_class, ckpt_option="checkpoint", class_option="source_class")
        self.source = source
        self.source.eval().requires_grad_(False)
        self.checkpoint, self.chunk_size, self.store_dtype, self.seed = checkpoint, chunk_size, store_dtype, seed

    # ---- helpers -----------------------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        """The source network (pixels -> logits, with ``features``)."""
        return getattr(self.source, "net", self.source)

    def shard_dataset(self):
        loader = self.trainer.predict_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        return loader.dataset

    def _writer(self):
        from zerosum.construct.writer import ShardWriter

        return next((cb for cb in self.trainer.callbacks if isinstance(cb, ShardWriter)), None)

    def settings(self) -> dict[str, Any]:
        """Everything that defines the dataset (compared on resume, written to the manifest)."""
        return {"kind": self.kind, "source_checkpoint": self.checkpoint, "seed": self.seed,
                "store_dtype": self.store_dtype, "keep_best": self.keep_best}

    def construct(self, x: Tensor, y: Tensor, index: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def predict_step(self, batch: dict, batch_idx: int = 0) -> Optional[dict]:
        writer = self._writer()
        if writer is not None and writer.is_done(int(batch["shard"])):
            return None
        parts = []
        for start in range(0, len(batch["y"]), self.chunk_size):
            chunk = slice(start, start + self.chunk_size)
            parts.append(self.construct(batch["x"][chunk], batch["y"][chunk], batch["index"][chunk]))
        out = {k: torch.cat([p[k] for p in parts]).cpu() for k in parts[0]}
        out["images"] = to_store(out["images"], self.store_dtype)
        out.update(shard=int(batch["shard"]), orig_labels=batch["y"].cpu(), index=batch["index"].cpu())
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.source(x)


class RobustFeatureDataset(DatasetConstruction):
    """D_R (robust source) / D_NR (standard source), Ilyas et al. section 3.1, Eq. (6).

    For each training image ``x`` (label ``y``), start from another random training image ``x0``
    (drawn independently of the label) and minimise ``||g(x_r) - g(x)||_2`` with normalised L2 steps
    in the pixel box; the new sample is ``(x_r, y)``.

    The manifest records the final feature distance (``inversion_loss``) and its ratio to
    ``||g(x)||`` (``inversion_rel_loss``, the loss of the official inversion walkthrough).

    Args:
        robust: names the result D_R (True) or D_NR (False) in the manifest; the source decides.
        step_size: normalised L2 step (paper: 0.1).
        steps: gradient steps (paper: 1000).
        fake_relu: gradients pass the last ReLU of the features as the identity (the official
            tooling's ``fake_relu=True``; see :mod:`zerosum.construct.inversion`).
        representation: null for the penultimate features (the paper), or the dotted name of a
            submodule of the classifier whose flattened output is matched instead, e.g. ``backbone.5``
            of ``small_cnn`` (the pooled-over map: 2048 values for width 16 on 32x32 images, the
            paper's representation size), for CPU-scale networks with few penultimate features.
    """

    def __init__(self, robust: bool = True, step_size: float = 0.1, steps: int = 1000, fake_relu: bool = True,
                 representation: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        if steps < 1 or step_size <= 0:
            raise ValueError(f"steps: {steps}, step_size: {step_size}; allowed: steps >= 1 and step_size > 0")
        self.kind = "d_r" if robust else "d_nr"
        self.step_size, self.steps, self.fake_relu = step_size, steps, fake_relu
        if fake_relu:
            final_relu(self.net)  # refuses a net whose last ReLU cannot be replaced, before any work
        self.representation = Representation(self.net, representation)  # refuses an unknown layer now
        self.representation_layer = representation

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "attack": {"objective": "feature_distance", "norm": "l2", "eps": None,
                                                 "step_size": self.step_size, "steps": self.steps,
                                                 "fake_relu": self.fake_relu},
                "representation": self.representation_layer}

    def start_indices(self, index: Tensor, n: int) -> Tensor:
        """The start image of sample ``i``: a seeded uniform choice among the other ``n - 1`` images."""
        g = torch.Generator().manual_seed(self.seed)
        offsets = torch.randint(1, n, (n,), generator=g) if n > 1 else torch.zeros(n, dtype=torch.long)
        index = index.cpu()
        return (index + offsets[index]) % n

    def construct(self, x: Tensor, y: Tensor, index: Tensor) -> dict[str, Tensor]:
        shards = self.shard_dataset()
        start = self.start_indices(index, shards.num_samples)
        x0, _ = shards.images(start)
        x, x0 = x.to(self.device), x0.to(self.device)
        x_r = invert_representation(self.net, x, x0, step_size=self.step_size, steps=self.steps,
                                    keep_best=self.keep_best, use_fake_relu=self.fake_relu,
                                    layer=self.representation_layer)
        with torch.no_grad():
            g = self.representation
            target = g(x)
            dist = (g(x_r) - target).norm(dim=1)
            rel = dist / target.norm(dim=1).clamp_min(1e-12)
        return {"images": x_r, "labels": y, "start_index": start, "feature_dist": dist.cpu(),
                "feature_rel_dist": rel.cpu()}


class NonRobustFeatureDataset(DatasetConstruction):
    """D_rand / D_det, Ilyas et al. section 3.2, Eq. (7): targeted L2 PGD on a standard model toward
    ``t`` and relabelling to ``t``.

    Every sample records whether the source model classifies it as ``t`` (``target_hit``); the
    manifest's ``target_hit_rate`` is their mean, checked before training
    (:class:`~zerosum.datamodules.ConstructedDataModule`'s ``min_hit_rate``).

    Args:
        num_classes: linked from the datamodule.
        target: "random" (t uniform over the classes, seeded) or "det" (t = (y + 1) mod C).
        eps: radius of the attack (paper: L2 0.5 on CIFAR-10).
        step_size: attack step (paper: 0.1).
        steps: attack steps (paper: 100).
        norm: "l2" (paper) or "linf".
    """

    TARGETS = ("random", "det")

    def __init__(self, num_classes: int, target: str = "det", eps: float = 0.5, step_size: float = 0.1,
                 steps: int = 100, norm: str = "l2", **kwargs):
        super().__init__(**kwargs)
        if target not in self.TARGETS:
            raise ValueError(f"target: {target!r}; allowed: {', '.join(self.TARGETS)}")
        refuse_degenerate_attack(eps, steps, step_size)
        if eps <= 0:
            raise ValueError(f"eps: {eps}; allowed: a positive radius (the attack must move the images)")
        self.kind = "d_rand" if target == "random" else "d_det"
        self.num_classes, self.target = num_classes, target
        self.attack = PGD(norm, eps, steps, step_size, random_start=False, keep_best=self.keep_best)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "attack": {"objective": "cross_entropy_targeted", **self.attack.settings()},
                "target": self.target}

    def targets(self, y: Tensor, index: Tensor, n: int) -> Tensor:
        if self.target == "det":
            return (y + 1) % self.num_classes
        g = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, self.num_classes, (n,), generator=g)[index.cpu()].to(y.device)

    def construct(self, x: Tensor, y: Tensor, index: Tensor) -> dict[str, Tensor]:
        t = self.targets(y, index, self.shard_dataset().num_samples)
        x, t_dev = x.to(self.device), t.to(self.device)
        x_adv = self.attack(self.net, x, t_dev, targeted=True)
        with torch.no_grad():
            hit = (self.net(x_adv).argmax(1) == t_dev).cpu()
        return {"images": x_adv, "labels": t, "target_hit": hit}

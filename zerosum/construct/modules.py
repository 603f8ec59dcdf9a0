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

from zerosum.attacks import PGD
from zerosum.construct.inversion import invert_representation
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
    """

    kind: str = ""

    def __init__(self, checkpoint: Optional[str] = None, source_class: str = "zerosum.modules.AdversarialTraining",
                 source: Optional[nn.Module] = None, chunk_size: int = 250, store_dtype: str = "float32", seed: int = 0):
        super().__init__()
        if (checkpoint is None) == (source is None):
            raise ValueError("give exactly one of checkpoint (a .ckpt path) or source (a module)")
        if store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype must be one of {sorted(STORE_DTYPES)}; got {store_dtype!r}")
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
                "store_dtype": self.store_dtype}

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

    Args:
        robust: names the result D_R (True) or D_NR (False) in the manifest; the source decides.
        step_size / steps: 0.1 / 1000 in the paper.
    """

    def __init__(self, robust: bool = True, step_size: float = 0.1, steps: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.kind = "d_r" if robust else "d_nr"
        self.step_size, self.steps = step_size, steps

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "attack": {"objective": "feature_distance", "norm": "l2", "eps": None,
                                                 "step_size": self.step_size, "steps": self.steps}}

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
        x_r = invert_representation(self.net, x.to(self.device), x0.to(self.device),
                                    step_size=self.step_size, steps=self.steps)
        with torch.no_grad():
            g = self.net.features
            dist = (g(x_r) - g(x.to(self.device))).flatten(1).norm(dim=1)
            rel = dist / g(x.to(self.device)).flatten(1).norm(dim=1).clamp_min(1e-12)
        return {"images": x_r, "labels": y, "start_index": start, "feature_rel_dist": rel.cpu()}


class NonRobustFeatureDataset(DatasetConstruction):
    """D_rand / D_det, Ilyas et al. section 3.2, Eq. (7): targeted L2 PGD on a standard model toward
    ``t`` and relabelling to ``t``.

    Args:
        target: "random" (t uniform over the classes, seeded) or "det" (t = (y + 1) mod C).
        eps / step_size / steps: 0.5 / 0.1 / 100 in the paper (L2).
        num_classes: linked from the datamodule.
    """

    TARGETS = ("random", "det")

    def __init__(self, num_classes: int, target: str = "det", eps: float = 0.5, step_size: float = 0.1,
                 steps: int = 100, norm: str = "l2", **kwargs):
        super().__init__(**kwargs)
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}; got {target!r}")
        self.kind = "d_rand" if target == "random" else "d_det"
        self.num_classes, self.target = num_classes, target
        self.attack = PGD(norm, eps, steps, step_size, random_start=False)

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

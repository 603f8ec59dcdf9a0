"""ADIOS: adversarial inference-occlusion self-supervision (Shi, Siddharth, Torr, Kosiorek, ICML 2022).

The game (paper Sec. 3; the shared paper text has no numbered equations): an encoder E with the head of an SSL objective L, and an occlusion model M
(a U-Net giving N soft masks per image, softmax over N so they partition the pixels) play

    min_E max_M  sum_n L(x_1, x_2 * (1 - m_n); E) - R(m),   m = M(x_2),
    R(m) = alpha * sum_n mean_b 1 / sin(pi * |m_bn| / HW)                     (sparsity penalty)

with alternating manual steps per batch: (1) an encoder step on L with the masks detached,
(2) an occlusion step descending on -(L - R) with the encoder frozen. SimCLR and BYOL mask the
second view; SimSiam masks both views with their own masks. ADIOS-s (``masking: adios_s``) draws one
of the N masks per sample and step (two encoder passes instead of 2N); R still covers all N masks.

Efficiency: the reference code re-encodes the clean view once per mask; here the clean view is
encoded once and the N masked copies go through the encoder as one batch of N*B images
(``ssl_loss(batched=False)`` is the reference loop, kept for tests and the benchmark). In train
mode BatchNorm layers therefore see statistics of the N*B batch instead of N separate B batches; in
eval mode the two are identical.

Baselines of the paper's masking comparison (Sec. 4.2): ``masking: none`` (plain SSL),
``random_patch`` (MAE-style) and ``block`` (BEiT-style), same objective, no occlusion model.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from zerosum.losses.sparsity import MaskSparsityPenalty
from zerosum.masks import BlockMask, RandomPatchMask
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import build_net
from zerosum.nets.unet import MaskUNet
from zerosum.optim import spec
from zerosum.optim.warmup_cosine import LinearWarmupCosineLR
from zerosum.ssl import build_objective
from zerosum.ssl.base import Outputs

MASKINGS = ("adios", "adios_s", "none", "random_patch", "block")


def occlude(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``x: B x C x H x W``, ``masks: B x N x H x W`` -> ``(N*B) x C x H x W``: mask-major copies
    ``x * (1 - m_n)`` (rows ``n*B .. n*B + B - 1`` hold mask ``n``)."""
    out = x.unsqueeze(0) * (1 - masks.transpose(0, 1).unsqueeze(2))
    return out.reshape(-1, *x.shape[1:])


def chunk_outputs(out: Outputs, chunks: int) -> list[Outputs]:
    parts = {k: v.chunk(chunks) for k, v in out.items()}
    return [{k: parts[k][i] for k in out} for i in range(chunks)]


class ADIOS(Game):
    """Args:
        num_classes / in_channels / image_size: linked from the datamodule (the encoder's class head
            is unused; evaluation is the online probe / kNN callbacks or :class:`LinearEval`).
        net / net_args: the encoder, any zerosum net (``features(x)`` is the representation).
        objective / objective_args: ``simclr``, ``byol`` or ``simsiam`` and its options
            (e.g. ``temperature``, ``proj_hidden_dim``, ``tau_base``).
        masking: ``adios``, ``adios_s``, ``none``, ``random_patch`` or ``block``.
        num_masks: N (ADIOS); ``alpha``: sparsity weight; ``mask_net_args``: ``base_width``,
            ``num_blocks``, ``norm`` of the U-Net; ``mask_generator_args``: options of the fixed
            baseline masks (``mask_ratio``, ``patch_size``).
        optimizer / mask_optimizer: callables from YAML (SGD, or :class:`zerosum.optim.LARS`); the
            mask optimizer has its own lr.
        warmup_epochs: linear warm-up length of the per-step warm-up cosine schedule of both
            optimizers (``cosine: false`` keeps constant rates).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        net: str = "resnet18_cifar",
        net_args: Optional[dict[str, Any]] = None,
        objective: str = "simclr",
        objective_args: Optional[dict[str, Any]] = None,
        masking: str = "adios",
        num_masks: int = 4,
        alpha: float = 1.0,
        mask_net_args: Optional[dict[str, Any]] = None,
        mask_generator_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.1, momentum=0.9, weight_decay=1e-4),
        mask_optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9),
        warmup_epochs: float = 10.0,
        cosine: bool = True,
    ):
        super().__init__()
        if masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
        if num_masks < 1:
            raise ValueError(f"num_masks (N) must be >= 1, got {num_masks}")
        self.save_hyperparameters(ignore=["optimizer", "mask_optimizer"])
        self.encoder = build_net(net, num_classes, in_channels, **(net_args or {}))
        self.objective = build_objective(objective, self.encoder.feature_dim, **(objective_args or {}))
        self.objective.bind(self.encoder)
        self.mask_net: Optional[MaskUNet] = None
        self.mask_generator: Optional[nn.Module] = None
        if masking in ("adios", "adios_s"):
            self.mask_net = MaskUNet(in_channels, num_masks, image_size=image_size, **(mask_net_args or {}))
        elif masking == "random_patch":
            self.mask_generator = RandomPatchMask(**(mask_generator_args or {}))
        elif masking == "block":
            self.mask_generator = BlockMask(**(mask_generator_args or {}))
        self.penalty = MaskSparsityPenalty(alpha)
        schedule = self._warmup_cosine if cosine else None
        self.add_player("encoder", ("encoder", "objective"), optimizer, schedule)
        if self.mask_net is not None:
            self.add_player("occluder", "mask_net", mask_optimizer, schedule)
        self.register_buffer("encoder_steps", torch.zeros((), dtype=torch.long))
        self._total_steps = 1

    # ---- pieces --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation: the encoder's penultimate features."""
        return self.encoder.features(x)

    def predict_masks(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """``B x N x H x W`` masks of the occlusion model (or the fixed generator), None without."""
        if self.mask_net is not None:
            return self.mask_net(x)
        if self.mask_generator is not None:
            return self.mask_generator(x)
        return None

    def _masks(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        if self.hparams.masking == "none":
            return None, None
        both = self.objective.mask_both_views
        return (self.predict_masks(v1) if both else None), self.predict_masks(v2)

    def ssl_loss(self, v1: torch.Tensor, v2: torch.Tensor, masks1: Optional[torch.Tensor], masks2: Optional[torch.Tensor],
                 batched: bool = True) -> tuple[torch.Tensor, Outputs]:
        """``sum_n L(view 1, view 2 * (1 - m_n))`` (both views masked for SimSiam); returns the loss
        and the clean first view's outputs. ``masks*`` are ``B x N x H x W``; ``None`` masks give
        the plain objective. ``batched=False`` is the reference loop re-encoding per mask."""
        obj, enc = self.objective, self.encoder
        if masks2 is None:
            o1, o2 = obj.encode(enc, v1), obj.encode(enc, v2)
            return obj.plain_loss(o1, o2), o1
        both = obj.mask_both_views
        if both and masks1 is None:
            raise ValueError(f"{type(obj).__name__} masks both views: masks1 is required")
        n = masks2.shape[1]
        if not batched:
            loss = v1.new_zeros(())
            for k in range(n):
                c1 = obj.encode(enc, v1)
                c2 = obj.encode(enc, v2) if both else None
                m1 = obj.encode(enc, v1 * (1 - masks1[:, k:k + 1])) if both else None
                m2 = obj.encode(enc, v2 * (1 - masks2[:, k:k + 1]))
                loss = loss + obj.masked_loss((c1, c2), (m1, m2))
            return loss, c1
        c1 = obj.encode(enc, v1)
        c2 = obj.encode(enc, v2) if both else None
        occluded = [occlude(v1, masks1), occlude(v2, masks2)] if both else [occlude(v2, masks2)]
        parts = chunk_outputs(obj.encode(enc, torch.cat(occluded)), len(occluded) * n)
        m1s, m2s = (parts[:n], parts[n:]) if both else ([None] * n, parts)
        loss = sum(obj.masked_loss((c1, c2), (m1s[k], m2s[k])) for k in range(n))
        return loss, c1

    @staticmethod
    def pick_one(masks: Optional[torch.Tensor], choice: torch.Tensor) -> Optional[torch.Tensor]:
        """ADIOS-s: sample ``b`` keeps only mask ``choice[b]`` (``B x 1 x H x W``)."""
        if masks is None:
            return None
        return masks[torch.arange(len(masks), device=masks.device), choice].unsqueeze(1)

    def mask_penalty(self, masks1: Optional[torch.Tensor], masks2: torch.Tensor) -> torch.Tensor:
        penalty = self.penalty(masks2)
        return penalty + self.penalty(masks1) if masks1 is not None else penalty

    # ---- the game ------------------------------------------------------------------------------
    @staticmethod
    def _views(batch) -> tuple[torch.Tensor, torch.Tensor]:
        views = batch[0]
        if not isinstance(views, (list, tuple)) or len(views) < 2:
            raise ValueError(
                "ADIOS needs two augmented views per sample: set data.init_args.train_transform to "
                "zerosum.transforms.SimCLRTransform (a batch must be ([view_1, view_2], y, idx))"
            )
        return views[0], views[1]

    def _progress(self) -> float:
        total = getattr(self, "_total_steps", None) or 1
        return float(self.encoder_steps.item()) / total

    def occluder_objective(self, v1: torch.Tensor, v2: torch.Tensor, used1, used2, masks1, masks2) -> torch.Tensor:
        """The occluder descends ``-(L - R)``: it maximises the SSL loss of the masked views minus the
        sparsity penalty of all N masks (ADIOS Sec. 3)."""
        loss, _ = self.ssl_loss(v1, v2, used1, used2)
        penalty = self.mask_penalty(masks1, masks2)
        cover = self.penalty.coverage(masks2.detach()).mean(0)
        log_step(self, {"train/mask_ssl_loss": loss, "train/mask_penalty": penalty,
                        "train/mask_cover_min": cover.min(), "train/mask_cover_max": cover.max()})
        return -(loss - penalty)

    def training_step(self, batch, batch_idx: int):
        """One round of the ADIOS game: the encoder minimises L with the masks fixed, then the
        occluder maximises L - R with the encoder fixed."""
        v1, v2 = self._views(batch)
        masks1, masks2 = self._masks(v1, v2)  # with the occluder's graph, reused by its update
        if self.hparams.masking == "adios_s":
            choice = torch.randint(self.hparams.num_masks, (len(v2),), device=v2.device)
            used1, used2 = self.pick_one(masks1, choice), self.pick_one(masks2, choice)
        else:
            used1, used2 = masks1, masks2
        detach = lambda m: None if m is None else m.detach()  # noqa: E731

        loss_e, clean = self.ssl_loss(v1, v2, detach(used1), detach(used2))
        loss_e = self.play("encoder", loss_e)  # min_E L
        self.objective.after_encoder_step(self.encoder, self._progress())
        self.encoder_steps += 1
        log_step(self, {"train/ssl_loss": loss_e}, prog_bar=True)
        if "occluder" in self.players:  # max_M L - R
            self.play("occluder", lambda: self.occluder_objective(v1, v2, used1, used2, masks1, masks2))
        return {"loss": loss_e, "features": clean["h"].detach()}

    def _eval_step(self, batch, stage: str):
        x = batch[0]
        h = self.features(x)
        if self.mask_net is not None and stage == "val":
            cover = self.penalty.coverage(self.mask_net(x)).mean(0)
            self.log_dict({"val/mask_cover_min": cover.min(), "val/mask_cover_max": cover.max()}, sync_dist=True)
        return {"features": h}

    def validation_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "test")

    def _warmup_cosine(self, optimizer: torch.optim.Optimizer) -> LinearWarmupCosineLR:
        """Linear warm-up over ``warmup_epochs``, then cosine to 0 at the last step of training."""
        epochs = self.trainer.max_epochs if self._trainer is not None and (self.trainer.max_epochs or 0) > 0 else 1
        warmup = min(self._total_steps, int(round(self.hparams.warmup_epochs * self._total_steps / epochs)))
        return LinearWarmupCosineLR(optimizer, warmup, self._total_steps)

    def configure_optimizers(self):
        total = 1
        if self._trainer is not None:
            try:
                total = max(1, int(self.trainer.estimated_stepping_batches))
            except Exception:  # no dataloader attached (e.g. optimizers built by hand)
                total = 1
        self._total_steps = total
        return super().configure_optimizers()

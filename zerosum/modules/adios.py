"""ADIOS: adversarial inference-occlusion self-supervision (Shi, Siddharth, Torr, Kosiorek, ICML 2022).

The game (paper Sec. 3; the shared paper text has no numbered equations): an encoder E with the head of an SSL objective L, and an occlusion model M
(a U-Net giving N soft masks per image, softmax over N so they partition the pixels) play

    min_E max_M  sum_n L(x_1, x_2 * (1 - m_n); E) - R(m),   m = M(x_2),
    R(m) = alpha * sum_n mean_b 1 / sin(pi * |m_bn| / HW)                     (sparsity penalty)

with alternating manual steps per batch: (1) an encoder step on L with the masks detached,
(2) an occlusion step descending on -(L - R) with the encoder frozen. SimCLR and BYOL mask the
second view; SimSiam masks both views with their own masks. ADIOS-s (``masking: adios_s``) draws one
of the N masks per sample and step (two encoder passes instead of 2N); R still covers all N masks.
The official code's optional ``alpha_entropy`` term (:class:`zerosum.losses.CoverageNegentropy`) is
added to what the occluder maximises.

Efficiency without changing the game: the reference code encodes the clean view and each masked
view in separate encoder calls. Here they go through the encoder in one call, and every BatchNorm
layer normalises the clean view and each masked view with their own batch statistics
(:func:`zerosum.ssl.batch_norm_per_group`), replaying the reference loop's running-statistics
updates in its order, so losses, gradients and BatchNorm buffers are those of the per-mask loop in
training mode too (tests/modules/test_adios.py checks it against that loop).

Baselines of the paper's masking comparison (Sec. 4.2): ``masking: none`` (plain SSL),
``random_patch`` (MAE-style) and ``block`` (BEiT-style), same objective, no occlusion model.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from zerosum.losses.sparsity import CoverageNegentropy, MaskSparsityPenalty
from zerosum.masks import BlockMask, RandomPatchMask, coverage_extremes, derangement, pairwise_correlation
from zerosum.modules.game import Game
from zerosum.modules.step_logging import log_step
from zerosum.nets import NetSpec, build_net
from zerosum.nets.occlusion_unet import OcclusionUNet
from zerosum.nets.unet import MaskUNet
from zerosum.optim import spec
from zerosum.optim.warmup_cosine import LinearWarmupCosineLR
from zerosum.ssl import build_objective
from zerosum.ssl.base import Outputs
from zerosum.ssl.batch_groups import batch_norm_per_group
from zerosum.ssl.export import save_encoder

MASKINGS = ("adios", "adios_s", "none", "random_patch", "block")
LEARNED = ("adios", "adios_s")
#: ``adios_unet``: the official occlusion network (default); ``double_conv_unet``: zerosum's earlier,
#: about 10x larger U-Net (two convs per level, widths up to 8x base, max-pooling).
MASK_NETS = {"adios_unet": OcclusionUNet, "double_conv_unet": MaskUNet}
#: Masks count as collapsed when, on average, one mask covers this much of an image.
COLLAPSED_COVER = 0.9


def occlude(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``x: B x C x H x W``, ``masks: B x N x H x W`` -> ``(N*B) x C x H x W``: mask-major copies
    ``x * (1 - m_n)`` (rows ``n*B .. n*B + B - 1`` hold mask ``n``)."""
    out = x.unsqueeze(0) * (1 - masks.transpose(0, 1).unsqueeze(2))
    return out.reshape(-1, *x.shape[1:])


def chunk_outputs(out: Outputs, chunks: int) -> list[Outputs]:
    parts = {k: v.chunk(chunks) for k, v in out.items()}
    return [{k: parts[k][i] for k in out} for i in range(chunks)]


def reference_order(num_masks: int, both_views: bool) -> list[int]:
    """Encoder calls of the reference per-mask loop, as indices of the batched groups ``[clean view 1,
    (clean view 2), masked 1..N of view 1, (masked 1..N of view 2)]``: per mask ``k`` it encodes
    view 1 and masked view ``k`` (SimSiam: view 1, view 2, masked view 1, masked view 2)."""
    if both_views:
        return [g for k in range(num_masks) for g in (0, 1, 2 + k, 2 + num_masks + k)]
    return [g for k in range(num_masks) for g in (0, 1 + k)]


class ADIOS(Game):
    """ADIOS: an encoder and an occlusion model playing the masked-view game (module docstring).

    Args:
        num_classes: linked from the datamodule (the encoder's class head is unused; evaluation is
            the online probe / kNN callbacks or :class:`LinearEval`).
        in_channels: image channels, linked from the datamodule.
        image_size: image side in pixels, linked from the datamodule (the occlusion net is built for it).
        net: the encoder, any zerosum net (``features(x)`` is the representation), e.g.
            ``resnet18_cifar``, ``torchvision.resnet18``, ``vit_tiny``.
        net_args: keyword arguments of the encoder.
        objective: ``simclr``, ``byol`` or ``simsiam``.
        objective_args: options of the objective (e.g. ``temperature``, ``proj_hidden_dim``, ``tau_base``).
        masking: ``adios``, ``adios_s`` (one sampled mask per image), ``none``, ``random_patch`` or ``block``.
        num_masks: N, the number of masks of the occlusion model (at least 2 for adios/adios_s).
        alpha: weight of the sparsity penalty (the official ``alpha_sparsity``); 0 lets the masks collapse.
        alpha_entropy: weight of the official coverage-entropy term (0: off).
        mask_net: ``adios_unet`` (the official occlusion network) or ``double_conv_unet``.
        mask_net_args: options of the occlusion net: ``base_width`` (official ``mask_fbase``),
            ``num_blocks``, ``norm`` (official ``unet_norm``).
        mask_generator_args: options of the fixed baseline masks (``mask_ratio``, ``patch_size``).
        optimizer: the encoder's optimizer (SGD, or :class:`zerosum.optim.LARS` as the official code).
        mask_optimizer: the occlusion model's optimizer, own lr (the official code gives it the
            encoder's weight decay and LARS wrapping).
        warmup_epochs: linear warm-up length of the per-step warm-up cosine schedule of both optimizers.
        warmup_start_lr: learning rate at the first step of the warm-up (official: 0.003).
        cosine: False keeps constant learning rates.
        mask_diagnostics: log per-sample coverage extremes, pairwise mask correlation and the
            shuffled-mask control every validation.
        encoder_export: file name under the log dir for the trained encoder alone, written at the end
            of training (:func:`zerosum.ssl.load_encoder` reads it; not with fast_dev_run); null: not written.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        net: NetSpec = "resnet18_cifar",
        net_args: Optional[dict[str, Any]] = None,
        objective: str = "simclr",
        objective_args: Optional[dict[str, Any]] = None,
        masking: str = "adios",
        num_masks: int = 4,
        alpha: float = 1.0,
        alpha_entropy: float = 0.0,
        mask_net: str = "adios_unet",
        mask_net_args: Optional[dict[str, Any]] = None,
        mask_generator_args: Optional[dict[str, Any]] = None,
        optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.1, momentum=0.9, weight_decay=1e-4),
        mask_optimizer: OptimizerCallable = spec("torch.optim.SGD", lr=0.01, momentum=0.9, weight_decay=1e-4),
        warmup_epochs: float = 10.0,
        warmup_start_lr: float = 0.0,
        cosine: bool = True,
        mask_diagnostics: bool = True,
        encoder_export: Optional[str] = "encoder.pt",
    ):
        super().__init__()
        if masking not in MASKINGS:
            raise ValueError(f"masking: {masking!r}; allowed: {', '.join(MASKINGS)}")
        if num_masks < (2 if masking in LEARNED else 1):
            raise ValueError(f"num_masks: {num_masks}; allowed: >= 2 with masking {masking} (one mask covering every "
                             f"pixel occludes the whole image)" if masking in LEARNED else
                             f"num_masks: {num_masks}; allowed: >= 1")
        if mask_net not in MASK_NETS:
            raise ValueError(f"mask_net: {mask_net!r}; allowed: {', '.join(MASK_NETS)}")
        self.save_hyperparameters(ignore=["optimizer", "mask_optimizer"])
        self.encoder = build_net(net, num_classes, in_channels, encoder=True,
                                 sample_shape=(in_channels, image_size, image_size), **(net_args or {}))
        self.objective = build_objective(objective, self.encoder.feature_dim, **(objective_args or {}))
        self.objective.bind(self.encoder)
        self.mask_net: Optional[nn.Module] = None
        self.mask_generator: Optional[nn.Module] = None
        if masking in LEARNED:
            self.mask_net = MASK_NETS[mask_net](in_channels, num_masks, image_size=image_size, **(mask_net_args or {}))
            if alpha <= 0:
                rank_zero_warn(f"alpha: {alpha} turns the sparsity penalty off; without it the occluder's masks "
                               "drift towards collapse (one mask growing over the whole image) within a few hundred steps. "
                               "ADIOS warns again with the step at which it sees that happen.")
        elif masking == "random_patch":
            self.mask_generator = RandomPatchMask(**(mask_generator_args or {}))
        elif masking == "block":
            self.mask_generator = BlockMask(**(mask_generator_args or {}))
        self.penalty = MaskSparsityPenalty(alpha)
        self.negentropy = CoverageNegentropy(alpha_entropy)
        schedule = self._warmup_cosine if cosine else None
        self.add_player("encoder", ("encoder", "objective"), optimizer, schedule)
        if self.mask_net is not None:
            self.add_player("occluder", "mask_net", mask_optimizer, schedule)
        self.register_buffer("encoder_steps", torch.zeros((), dtype=torch.long))
        self._total_steps = 1
        self.collapsed_at: Optional[int] = None

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

    def ssl_loss(self, v1: torch.Tensor, v2: torch.Tensor, masks1: Optional[torch.Tensor],
                 masks2: Optional[torch.Tensor]) -> tuple[torch.Tensor, Outputs]:
        """``sum_n L(view 1, view 2 * (1 - m_n))`` (both views masked for SimSiam); returns the loss
        and the clean first view's outputs. ``masks*`` are ``B x N x H x W``; ``None`` masks give
        the plain objective. All views go through the encoder in one call with BatchNorm statistics
        per view and mask, as the reference loop's separate calls (module docstring)."""
        obj, enc = self.objective, self.encoder
        if masks2 is None:
            o1, o2 = obj.encode(enc, v1), obj.encode(enc, v2)
            return obj.plain_loss(o1, o2), o1
        both = obj.mask_both_views
        if both and masks1 is None:
            raise ValueError(f"{type(obj).__name__} masks both views: masks1 is required")
        n = masks2.shape[1]
        clean = [v1, v2] if both else [v1]
        occluded = [occlude(v1, masks1), occlude(v2, masks2)] if both else [occlude(v2, masks2)]
        groups = len(clean) + len(occluded) * n
        with batch_norm_per_group((enc, obj), groups, reference_order(n, both)):
            parts = chunk_outputs(obj.encode(enc, torch.cat(clean + occluded)), groups)
        c1, c2 = parts[0], (parts[1] if both else None)
        masked = parts[len(clean):]
        m1s, m2s = (masked[:n], masked[n:]) if both else ([None] * n, masked)
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
        """The occluder descends ``-(L - R + alpha_entropy term)``: it maximises the SSL loss of the
        masked views minus the sparsity penalty of all N masks (ADIOS Sec. 3)."""
        loss, _ = self.ssl_loss(v1, v2, used1, used2)
        penalty = self.mask_penalty(masks1, masks2)
        mask_sets = [m for m in (masks1, masks2) if m is not None]
        negentropy = self.negentropy(*mask_sets) if self.negentropy.alpha_entropy > 0 else penalty.new_zeros(())
        cover_min, cover_max = coverage_extremes(*(m.detach() for m in mask_sets))
        self._watch_collapse(cover_max)
        log_step(self, {"train/mask_ssl_loss": loss, "train/mask_penalty": penalty, "train/mask_negentropy": negentropy,
                        "train/mask_cover_min": cover_min, "train/mask_cover_max": cover_max})
        return -(loss - penalty + negentropy)

    def _watch_collapse(self, cover_max: torch.Tensor) -> None:
        """Warn once, with the step, when one mask covers most of every image (official per-sample
        ``mask_summed_max``). Checked every step for the first 100 steps, then every 10."""
        step = int(self.encoder_steps)
        if self.collapsed_at is not None or (step > 100 and step % 10):
            return
        value = float(cover_max)
        if value >= COLLAPSED_COVER:
            self.collapsed_at = step
            rank_zero_warn(f"ADIOS masks collapsed at step {step}: the largest of the {self.hparams.num_masks} masks covers "
                           f"{value:.1%} of each image on average (train/mask_cover_max) with alpha={self.hparams.alpha}; "
                           "a larger alpha (sparsity penalty) keeps the masks apart")

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

    # ---- watching the masks ------------------------------------------------------------------------
    @torch.no_grad()
    def mask_report(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Diagnostics of the masks on images ``x`` (no augmentation: both views are ``x``):
        per-sample coverage extremes (official ``mask_summed_min/max``), mean pairwise correlation of
        an image's masks, and the shuffled-mask control: the masked loss with each image's own masks
        vs with the next image's masks (an occluder adapted to its image hurts it more: gap > 0)."""
        masks = self.predict_masks(x)
        if masks is None:
            return {}
        cover_min, cover_max = coverage_extremes(masks)
        both = self.objective.mask_both_views
        perm = derangement(len(x), x.device)
        own, _ = self.ssl_loss(x, x, masks if both else None, masks)
        shuffled, _ = self.ssl_loss(x, x, masks[perm] if both else None, masks[perm])
        n = masks.shape[1]
        return {"mask_cover_min": cover_min, "mask_cover_max": cover_max, "mask_corr": pairwise_correlation(masks),
                "mask_loss_own": own / n, "mask_loss_shuffled": shuffled / n, "mask_shuffle_gap": (own - shuffled) / n}

    def _eval_step(self, batch, stage: str):
        x = batch[0]
        h = self.features(x)
        if stage == "val" and self.hparams.mask_diagnostics and len(x) > 1:
            report = self.mask_report(x)
            if report:
                self.log_dict({f"val/{k}": v for k, v in report.items()}, on_step=False, on_epoch=True,
                              sync_dist=True, batch_size=len(x))
        return {"features": h}

    def validation_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The representation of each sample (``zerosum predict`` writes ``features.pt`` to the run folder)."""
        x = batch[0][0] if isinstance(batch[0], (list, tuple)) else batch[0]
        return {"index": batch[2], "features": self.features(x)}

    # ---- the encoder alone ------------------------------------------------------------------------
    def export_encoder(self, path: str) -> str:
        """Write the encoder alone (state dict + how to rebuild it); ``zerosum.ssl.load_encoder(path)``."""
        hp = self.hparams
        return save_encoder(self.encoder, path, hp.net, hp.num_classes, hp.in_channels, hp.net_args, hp.image_size)

    def on_train_end(self) -> None:
        if not self.hparams.encoder_export or self.trainer.fast_dev_run:  # fast_dev_run writes nothing
            return
        folder = self.trainer.log_dir or self.trainer.default_root_dir  # every rank asks (collective under DDP)
        if self.trainer.is_global_zero:
            self.export_encoder(os.path.join(folder, self.hparams.encoder_export))

    # ---- schedules --------------------------------------------------------------------------------
    def _warmup_cosine(self, optimizer: torch.optim.Optimizer) -> LinearWarmupCosineLR:
        """Linear warm-up over ``warmup_epochs``, then cosine to 0 at the last step of training."""
        epochs = self.trainer.max_epochs if self._trainer is not None and (self.trainer.max_epochs or 0) > 0 else 1
        warmup = min(self._total_steps, int(round(self.hparams.warmup_epochs * self._total_steps / epochs)))
        return LinearWarmupCosineLR(optimizer, warmup, self._total_steps, warmup_start_lr=self.hparams.warmup_start_lr)

    def configure_optimizers(self):
        total = 1
        if self._trainer is not None:
            try:
                total = max(1, int(self.trainer.estimated_stepping_batches))
            except Exception:  # no dataloader attached (e.g. optimizers built by hand)
                total = 1
        self._total_steps = total
        return super().configure_optimizers()

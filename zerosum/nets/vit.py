"""A Vision Transformer encoder (Dosovitskiy et al. 2021) under zerosum's features/head convention:
ViT-Tiny (``vit_tiny``: patch 16, width 192, depth 12, 3 heads), the transformer backbone of ADIOS's
official ViT scripts (``--encoder vit_tiny``, timm's ``vit_tiny_patch16_224`` with ``img_size`` set
to the data's, e.g. 96 px for STL-10 and ImageNet100-S), written here with ``torch.nn`` so no extra
package and no hub weights are needed (this workplace has no model hub; weights start random).

As timm's: a conv patch embedding, a class token, learned position embeddings, pre-norm blocks
(LayerNorm eps 1e-6, GELU MLP of ratio 4, biased qkv), a final LayerNorm; ``features(x)`` is the
class token (timm's ``global_pool='token'``), ``feature_dim`` the width. Position embeddings are
resized (bicubic) when the images differ from ``image_size``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.nets.base import FeatureClassifier


class VisionTransformer(nn.Module):
    """Images ``B x C x H x W`` -> class-token features ``B x embed_dim``."""

    def __init__(self, in_channels: int = 3, image_size: int = 224, patch_size: int = 16, embed_dim: int = 192,
                 depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size, patch_size: {image_size}, {patch_size}; allowed: image_size a multiple of patch_size")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim, num_heads: {embed_dim}, {num_heads}; allowed: embed_dim a multiple of num_heads")
        self.patch_size, self.grid = patch_size, image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid ** 2, embed_dim))
        layer = nn.TransformerEncoderLayer(embed_dim, num_heads, int(embed_dim * mlp_ratio), dropout, activation="gelu",
                                           layer_norm_eps=1e-6, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls, patches = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patches = patches.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls, patches.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)  # B x D x h x w
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + self.position_embedding(h, w)
        return self.norm(self.blocks(tokens))[:, 0]


class ViT(FeatureClassifier):
    """A ViT classifier: ``features(x)`` is the class token, ``head`` a linear layer.

    Args:
        num_classes: classes of the linear head.
        in_channels: image channels.
        image_size: side of the images the position embeddings are made for (other sizes are resized to).
        patch_size: side of a patch in pixels.
        embed_dim: token width.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLPs relative to ``embed_dim``.
        dropout: dropout in the blocks and before the head.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 224, patch_size: int = 16,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.backbone = VisionTransformer(in_channels, image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, dropout)
        self._make_head(embed_dim, num_classes, dropout)


def vit_tiny(num_classes: int, in_channels: int = 3, image_size: int = 224, patch_size: int = 16, **kwargs) -> ViT:
    """ViT-Tiny/16 (width 192, depth 12, 3 heads), as the official ADIOS ``vit_tiny``; ``kwargs`` may
    override any :class:`ViT` option (a smaller test model, say)."""
    return ViT(num_classes, in_channels, image_size, patch_size, **{"embed_dim": 192, "depth": 12, "num_heads": 3, **kwargs})


def vit_small(num_classes: int, in_channels: int = 3, image_size: int = 224, patch_size: int = 16, **kwargs) -> ViT:
    """ViT-Small/16 (width 384, depth 12, 6 heads); ``kwargs`` may override any :class:`ViT` option."""
    return ViT(num_classes, in_channels, image_size, patch_size, **{"embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})


__all__ = ["ViT", "VisionTransformer", "vit_small", "vit_tiny"]

"""VGG16 with batch norm for 32 px inputs (VAAL's task model): 13 conv layers, 512-d features."""

from __future__ import annotations

from torch import nn

from zerosum.nets.base import FeatureClassifier

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16BN(FeatureClassifier):
    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c_in = v
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.backbone = nn.Sequential(*layers)
        self._make_head(512, num_classes, dropout)

    def features(self, x):
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"vgg16_bn halves the image 5 times and needs at least 32x32 pixels, got "
                             f"{tuple(x.shape[-2:])}; resize the data (e.g. DigitsDataModule image_size: 32)")
        return self.backbone(x)

"""Networks. Classifiers follow one convention: ``features(x)`` (penultimate) then a linear ``head``.

A module's ``net`` argument takes a registry name, a dotted import path, a ``{class_path, init_args}``
mapping or your own ``nn.Module`` (:func:`build_net`); networks that lack ``features`` /
``feature_dim`` are completed by :class:`OwnNet` (see :mod:`zerosum.nets.adapter`)."""

from zerosum.nets.base import FeatureClassifier
from zerosum.nets.normalized import Normalized
from zerosum.nets.projection import MLPHead
from zerosum.nets.unet import MaskUNet
from zerosum.nets.discriminator import LatentDiscriminator
from zerosum.nets.vae import BetaVAE
from zerosum.nets.adapter import OwnNet
from zerosum.nets.registry import NETS, NetSpec, Network, build_net, register_net
from zerosum.nets.resnet_cifar import CifarResNet, resnet18_cifar, resnet34_cifar
from zerosum.nets.small_cnn import SmallCNN
from zerosum.nets.torchvision_net import TorchvisionNet
from zerosum.nets.vgg import VGG16BN

__all__ = [
    "NETS", "CifarResNet", "FeatureClassifier", "Normalized", "SmallCNN", "TorchvisionNet", "VGG16BN", "build_net",
    "register_net", "resnet18_cifar", "resnet34_cifar",
]
__all__ += ["MLPHead", "MaskUNet", "NetSpec", "Network", "OwnNet"]
__all__ += ["BetaVAE", "LatentDiscriminator"]

from zerosum.nets.meta_net import MetaNet  # noqa: E402
from zerosum.nets.preact_resnet import PreActResNet, preact_resnet18  # noqa: E402

__all__ += ["MetaNet", "PreActResNet", "preact_resnet18"]

"""Networks. Classifiers follow one convention: ``features(x)`` (penultimate) then a linear ``head``."""

from zerosum.nets.base import FeatureClassifier
from zerosum.nets.normalized import Normalized
from zerosum.nets.registry import NETS, build_net, register_net
from zerosum.nets.resnet_cifar import CifarResNet, resnet18_cifar, resnet34_cifar
from zerosum.nets.small_cnn import SmallCNN
from zerosum.nets.torchvision_net import TorchvisionNet
from zerosum.nets.vgg import VGG16BN

__all__ = [
    "NETS", "CifarResNet", "FeatureClassifier", "Normalized", "SmallCNN", "TorchvisionNet", "VGG16BN", "build_net",
    "register_net", "resnet18_cifar", "resnet34_cifar",
]

import pytest
import torch

from zerosum.nets import NETS, build_net


@pytest.mark.parametrize(
    "name, in_channels, size",
    [("small_cnn", 1, 8), ("resnet18_cifar", 3, 32), ("vgg16_bn", 3, 32), ("torchvision.resnet18", 1, 32)],
)
def test_logits_shape_and_features_feed_the_head(name, in_channels, size):
    torch.manual_seed(0)
    net = build_net(name, num_classes=7, in_channels=in_channels).eval()
    x = torch.randn(2, in_channels, size, size)
    features = net.features(x)
    assert features.shape == (2, net.feature_dim)
    assert net(x).shape == (2, 7)
    assert torch.allclose(net.head(features), net(x), atol=1e-5)


def test_every_registered_net_builds_with_class_count():
    for name in NETS:
        net = build_net(name, num_classes=3, in_channels=3)
        assert net.head.out_features == 3


def test_cifar_resnet18_keeps_resolution_in_stem():
    net = build_net("resnet18_cifar", num_classes=10)
    stem = net.backbone[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())


def test_unknown_net_names_the_choices():
    with pytest.raises(ValueError, match="small_cnn"):
        build_net("resnet9000", num_classes=2)


def test_vgg_on_too_small_images_says_what_size_it_needs():
    with pytest.raises(ValueError, match="32x32"):
        build_net("vgg16_bn", num_classes=10, in_channels=1)(torch.randn(2, 1, 8, 8))

import pytest
import torch

from zerosum.nets import MLPHead, MaskUNet


@pytest.mark.parametrize("size,norm", [(32, "group"), (16, "instance"), (24, "none"), (96, "gn")])
def test_unet_masks_partition_every_pixel(size, norm):
    net = MaskUNet(3, num_masks=4, base_width=8, image_size=size, norm=norm)
    m = net(torch.randn(2, 3, size, size))
    assert m.shape == (2, 4, size, size)
    assert torch.allclose(m.sum(1), torch.ones(2, size, size), atol=1e-5)
    assert (m >= 0).all()


def test_unet_masks_of_a_sample_do_not_depend_on_the_batch():
    net = MaskUNet(1, num_masks=2, base_width=8, image_size=16)
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(net(x)[:1], net(x[:1]), atol=1e-5)


def test_unet_bad_options_are_named():
    with pytest.raises(ValueError, match="norm"):
        MaskUNet(norm="batch")
    with pytest.raises(ValueError, match="num_blocks"):
        MaskUNet(image_size=8, num_blocks=6)


def test_mlp_head_layers():
    head = MLPHead(8, 16, 4, num_layers=3, last_norm=True)
    out = head(torch.randn(5, 8))
    assert out.shape == (5, 4)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)  # affine-free BN at the output

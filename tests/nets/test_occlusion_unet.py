import pytest
import torch

from zerosum.nets.occlusion_unet import OcclusionUNet, default_num_blocks, official_widths


def test_widths_are_the_official_lists():
    # src/utils/unet.py of YugeTen/adios: enc_out / dec_out for 4, 5 and 6 blocks (c = 1)
    assert official_widths(1, 4) == ([1, 2, 2, 2], [2, 2, 1, 1])
    assert official_widths(1, 5) == ([1, 1, 2, 2, 2], [2, 2, 1, 1, 1])
    assert official_widths(1, 6) == ([1, 1, 1, 2, 2, 2], [2, 2, 1, 1, 1, 1])
    assert [default_num_blocks(s) for s in (32, 96, 224)] == [4, 5, 6]


def test_stl10_simclr_size_matches_the_official_network():
    # official: 5 blocks at 96 px, mask_fbase 128, N 6: convs without bias + GroupNorm, MLP bottleneck
    c, fs = 128, 96 // 16
    convs = [(3, c), (c, c), (c, 2 * c), (2 * c, 2 * c), (2 * c, 2 * c),
             (4 * c, 2 * c), (4 * c, 2 * c), (4 * c, c), (2 * c, c), (2 * c, c)]
    expected = sum(9 * i * o + 2 * o for i, o in convs)  # weights + GroupNorm affine
    flat = 2 * c * fs * fs
    expected += (flat * 128 + 128) + (128 * 128 + 128) + (128 * flat + flat) + (c * 6 + 6)
    net = OcclusionUNet(3, 6, base_width=c, image_size=96, norm="gn")
    assert sum(p.numel() for p in net.parameters()) == expected  # 7.55M


@pytest.mark.parametrize("size", [8, 16, 28, 32])
def test_masks_partition_each_pixel_and_depend_only_on_their_image(size):
    torch.manual_seed(0)
    net = OcclusionUNet(3, 4, base_width=8, image_size=size, norm="instance").train()
    x = torch.randn(3, 3, size, size)
    m = net(x)
    assert m.shape == (3, 4, size, size) and torch.allclose(m.sum(1), torch.ones(3, size, size), atol=1e-5)
    assert torch.allclose(net(x[:1]), m[:1], atol=1e-5)  # no batch statistics


def test_bad_options_name_themselves():
    with pytest.raises(ValueError, match="num_blocks"):
        OcclusionUNet(image_size=8, num_blocks=6)
    with pytest.raises(ValueError, match="norm"):
        OcclusionUNet(norm="batch")
    with pytest.raises(ValueError, match="image_size"):
        OcclusionUNet(image_size=16)(torch.randn(1, 3, 32, 32))

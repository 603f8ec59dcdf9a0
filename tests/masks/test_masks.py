import pytest
import torch

from zerosum.masks import BlockMask, RandomPatchMask


def test_random_patch_masks_cover_the_ratio_in_whole_patches():
    torch.manual_seed(0)
    m = RandomPatchMask(mask_ratio=0.75, patch_size=16)(torch.zeros(6, 3, 64, 64))
    assert m.shape == (6, 1, 64, 64)
    assert torch.allclose(m.mean(dim=(1, 2, 3)), torch.full((6,), 0.75))
    patches = m[:, 0].unfold(1, 16, 16).unfold(2, 16, 16)  # each 16x16 patch constant
    assert (patches.amax((-1, -2)) == patches.amin((-1, -2))).all()
    assert not torch.equal(m[0], m[1])  # drawn per sample


def test_random_patch_defaults_to_a_finer_grid_at_32px():
    m = RandomPatchMask()(torch.zeros(2, 3, 32, 32))
    assert torch.allclose(m.mean(), torch.tensor(0.75))
    with pytest.raises(ValueError, match="mask_ratio"):
        RandomPatchMask(mask_ratio=1.0)


def test_block_masks_are_blocks_near_the_ratio():
    m = BlockMask(mask_ratio=0.4, patch_size=4, seed=0)(torch.zeros(8, 3, 32, 32))
    cover = m.mean(dim=(1, 2, 3))
    assert (cover > 0.2).all() and (cover <= round(0.4 * 64) / 64 + 1e-6).all()
    assert not torch.equal(m[0], m[1])
    assert set(m.unique().tolist()) <= {0.0, 1.0}

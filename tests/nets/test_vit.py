import pytest
import torch

from zerosum.modules import ADIOS
from zerosum.nets import build_net

TINY_VIT = {"image_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2}


def test_vit_tiny_has_the_official_shape():
    net = build_net("vit_tiny", 10, 3, image_size=96)
    assert net.feature_dim == 192 and len(net.backbone.blocks.layers) == 12
    assert net.backbone.blocks.layers[0].self_attn.num_heads == 3
    assert net.backbone.pos_embed.shape == (1, 1 + 6 * 6, 192)  # 96 px / 16 px patches, plus the class token


def test_features_are_the_class_token_and_other_sizes_resize_the_positions():
    torch.manual_seed(0)
    net = build_net("vit_small", 4, 3, **{**TINY_VIT, "embed_dim": 12})
    x = torch.randn(3, 3, 8, 8)
    assert net.features(x).shape == (3, 12) and net(x).shape == (3, 4)
    assert net.features(torch.randn(2, 3, 16, 16)).shape == (2, 12)
    x2 = x.clone()
    x2[1] = torch.randn(3, 8, 8)
    assert torch.allclose(net.features(x2)[[0, 2]], net.features(x)[[0, 2]], atol=1e-5)  # no batch coupling
    with pytest.raises(ValueError, match="patch_size"):
        build_net("vit_tiny", 4, 3, image_size=10, patch_size=4)


def test_adios_trains_a_vit_encoder():
    torch.manual_seed(0)
    model = ADIOS(num_classes=4, image_size=8, net="vit_tiny", net_args={**TINY_VIT, "patch_size": 4},
                  objective_args={"proj_hidden_dim": 16, "proj_output_dim": 8}, num_masks=2,
                  mask_net_args={"base_width": 4}, warmup_epochs=0, encoder_export=None)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    v = torch.randn(8, 3, 8, 8)
    model.training_step(([v, v + 0.1 * torch.randn_like(v)], None, None), 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


def test_exported_vit_encoder_reloads_at_the_image_size_it_was_trained_for(tmp_path):
    """The image size comes from the data (not net_args); the one-line loader must rebuild the same
    position embeddings (16 px / 4 px patches: 17 positions, not the 224 px default's 3137)."""
    from zerosum.ssl import load_encoder

    torch.manual_seed(0)
    net_args = {k: v for k, v in TINY_VIT.items() if k != "image_size"}
    model = ADIOS(num_classes=4, image_size=16, net="vit_tiny", net_args=net_args, num_masks=2,
                  mask_net_args={"base_width": 4}, encoder_export=None).eval()
    encoder = load_encoder(model.export_encoder(str(tmp_path / "encoder.pt")))
    x = torch.randn(2, 3, 16, 16)
    assert encoder.backbone.pos_embed.shape == (1, 17, 16)
    assert torch.allclose(encoder.features(x), model.encoder.features(x))

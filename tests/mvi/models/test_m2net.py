"""M2Net's defining structure: 2D projections, modality-specific 2D ResNets, compact bilinear fusion,
integration of every head; the compact bilinear pooling itself; local pretrained weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cmdnet.mvi.models import M2Net, build_model, network_options
from cmdnet.mvi.models.bilinear import CompactBilinearPooling
from cmdnet.mvi.models.m2net import project_to_2d
from cmdnet.mvi.models.resnet2d import ResNet2D

SMALL = (12, 24, 24)


def _images(batch=2, seed=0):
    return torch.randn(batch, 2, *SMALL, generator=torch.Generator().manual_seed(seed))


def test_projection_channels_are_the_means_along_z_y_and_x():
    profile = torch.linspace(-1, 1, SMALL[2])                    # varies along X only
    volume = profile.expand(*SMALL).unsqueeze(0).clone()         # (1, Z, Y, X)
    proj = project_to_2d(volume)
    assert proj.shape == (1, 3, SMALL[1], SMALL[2])
    assert torch.allclose(proj[0, 0], profile.expand(SMALL[1], SMALL[2])), "channel 0 must be the mean over Z"
    assert torch.allclose(proj[0, 1], profile.expand(SMALL[1], SMALL[2]), atol=1e-6), \
        "channel 1 must be the mean over Y (Z along rows, resampled to Y rows)"
    assert torch.allclose(proj[0, 2], torch.full((SMALL[1], SMALL[2]), profile.mean().item()), atol=1e-6), \
        "channel 2 must be the mean over X"
    random = torch.randn(2, *SMALL)
    assert torch.allclose(project_to_2d(random)[:, 0], random.mean(dim=1))
    coronal = F.interpolate(random.mean(dim=2).unsqueeze(1), size=SMALL[1:], mode="bilinear", align_corners=False)
    assert torch.allclose(project_to_2d(random)[:, 1], coronal[:, 0], atol=1e-6)


def test_m2net_runs_one_2d_resnet_per_phase_on_its_projections_and_has_no_3d_convolution():
    model = M2Net(in_shape_zyx=SMALL, width=0.125, feature_dim=16).eval()
    assert not [m for m in model.modules() if isinstance(m, nn.Conv3d)], "M2Net must be 2D after the projection"
    assert set(model.backbones) == {"pre", "hbp"} and model.backbones["pre"] is not model.backbones["hbp"]
    assert not torch.equal(model.backbones["pre"].conv1.weight, model.backbones["hbp"].conv1.weight)
    seen = {}
    for key, backbone in model.backbones.items():
        backbone.register_forward_hook(lambda _m, args, _out, key=key: seen.__setitem__(key, args[0]))
    images = _images()
    with torch.no_grad():
        model(images)
    for i, key in enumerate(("pre", "hbp")):
        assert torch.equal(seen[key], project_to_2d(images[:, i])), f"{key} backbone did not get its projections"


def test_m2net_2d_network_width_follows_width():
    assert M2Net(in_shape_zyx=SMALL, width=0.125).backbones["pre"].channels == (8, 16, 32, 64)
    assert M2Net(in_shape_zyx=SMALL, width=0.25).backbones["hbp"].channels == (16, 32, 64, 128)


def test_m2net_shared_network_fuses_the_pooled_phase_vectors_by_compact_bilinear_pooling():
    model = M2Net(in_shape_zyx=SMALL, width=0.125, feature_dim=16, bilinear_dim=256).eval()
    assert isinstance(model.bilinear, CompactBilinearPooling) and model.bilinear.in_dims == (64, 64)
    inputs = {}
    model.bilinear.register_forward_hook(lambda _m, args, _out: inputs.__setitem__("args", args))
    images = _images()
    with torch.no_grad():
        model(images)
        pooled = [model.backbones[k](project_to_2d(images[:, i])) for i, k in enumerate(("pre", "hbp"))]
    assert all(torch.equal(a, b) for a, b in zip(inputs["args"], pooled))


@pytest.mark.parametrize("integration", ["log_probs", "probs"])
def test_m2net_final_logits_integrate_the_softmax_outputs_of_phase_and_shared_heads(integration):
    torch.manual_seed(0)
    model = M2Net(in_shape_zyx=SMALL, width=0.125, feature_dim=16, bilinear_dim=256, integration=integration).eval()
    with torch.no_grad():
        out = model(_images())
    heads = M2Net.auxiliary_logits(out)
    assert list(heads) == ["pre", "hbp", "shared"]
    normalise = torch.log_softmax if integration == "log_probs" else torch.softmax
    fused = torch.cat([normalise(heads[k], dim=1) for k in heads], dim=1)
    assert torch.allclose(out.features["fused"], fused, atol=1e-6)
    assert torch.allclose(out.logits, model.integration(fused), atol=1e-6)
    if integration == "log_probs":  # starts as the product of the heads' distributions
        mean_log_probs = torch.stack([torch.log_softmax(v, dim=1) for v in heads.values()]).mean(dim=0)
        assert torch.allclose(out.logits, mean_log_probs, atol=1e-6)
    model.train()
    model(_images()).logits.sum().backward()
    for key in ("pre", "hbp"):
        assert model.phase_heads[key][-1].weight.grad is not None, f"final logits do not reach the {key} head"
    assert model.shared_head[-1].weight.grad is not None


def test_m2net_needs_two_phases():
    with pytest.raises(ValueError, match="needs two phases"):
        M2Net(in_shape_zyx=SMALL, phases=("HBP",), width=0.125)


def test_compact_bilinear_pooling_is_the_count_sketch_of_the_outer_product():
    torch.manual_seed(0)
    pool = CompactBilinearPooling([5, 7], 16, seed=3)
    x, y = torch.randn(4, 5), torch.randn(4, 7)
    (h1, s1), (h2, s2) = pool.hashes(0), pool.hashes(1)
    outer = (x[:, :, None] * y[:, None, :]) * (s1[:, None] * s2[None, :])          # (B, 5, 7), signed
    index = (h1[:, None] + h2[None, :]) % 16                                         # hash of entry (a, b)
    expected = torch.zeros(4, 16).index_add_(1, index.flatten(), outer.flatten(1))
    assert torch.allclose(pool(x, y), expected, atol=1e-5), "Tensor Sketch differs from the sketched outer product"


def test_compact_bilinear_pooling_is_linear_in_each_input():
    pool = CompactBilinearPooling([6, 6], 32, seed=1)
    x1, x2, y = torch.randn(3, 6), torch.randn(3, 6), torch.randn(3, 6)
    assert torch.allclose(pool(2.5 * x1, y), 2.5 * pool(x1, y), atol=1e-5)
    assert torch.allclose(pool(x1 + x2, y), pool(x1, y) + pool(x2, y), atol=1e-5)
    assert torch.allclose(pool(x1, -y), -pool(x1, y), atol=1e-5)


def test_compact_bilinear_inner_products_estimate_outer_product_inner_products():
    g = torch.Generator().manual_seed(0)
    x, y, x2, y2 = (torch.randn(1, 16, generator=g) for _ in range(4))
    exact = float((x @ x2.T) * (y @ y2.T))
    scale = float(x.norm() * y.norm() * x2.norm() * y2.norm())
    estimates = [float((p(x, y) * p(x2, y2)).sum()) for p in
                 (CompactBilinearPooling([16, 16], 4096, seed=s) for s in range(8))]
    assert abs(sum(estimates) / len(estimates) - exact) < 0.05 * scale


def test_resnet2d_parameter_names_and_shapes_are_torchvision_resnet34s():
    state = ResNet2D(width=1.0).state_dict()
    expected_shapes = {"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,),
                       "layer1.2.conv2.weight": (64, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                       "layer3.5.bn2.weight": (256,), "layer4.0.conv1.weight": (512, 256, 3, 3),
                       "layer4.2.bn2.running_var": (512,)}
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, f"{key}: {tuple(state[key].shape)} != torchvision's {shape}"
    blocks = {k.split(".")[0] + "." + k.split(".")[1] for k in state if k.startswith("layer")}
    assert len(blocks) == 3 + 4 + 6 + 3
    assert "layer1.0.downsample.0.weight" not in state


def test_pretrained_weights_load_into_every_phase_backbone(tmp_path):
    donor = ResNet2D(width=0.125)
    with torch.no_grad():
        donor.conv1.weight.fill_(0.5)
    state = {f"module.{k}": v for k, v in donor.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(1000, 64)  # the ImageNet classifier is ignored
    torch.save({"state_dict": state}, tmp_path / "resnet.pth")
    model = M2Net(in_shape_zyx=SMALL, width=0.125)
    model.load_pretrained_backbones(tmp_path / "resnet.pth")
    for key in ("pre", "hbp"):
        assert torch.equal(model.backbones[key].conv1.weight, donor.conv1.weight), f"{key} backbone not loaded"


def test_pretrained_weights_of_another_width_fail_with_the_file_and_the_mismatch_named(tmp_path):
    torch.save(ResNet2D(width=0.25).state_dict(), tmp_path / "wide.pth")
    model = M2Net(in_shape_zyx=SMALL, width=0.125)
    with pytest.raises(ValueError, match=r"wide\.pth: does not fit the 2D backbone.*shape mismatches.*conv1\.weight"):
        model.load_pretrained_backbones(tmp_path / "wide.pth")
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        model.load_pretrained_backbones(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth: not a weights file"):
        model.load_pretrained_backbones(tmp_path / "junk.pth")


def test_network_options_come_from_the_model_section_and_unknown_keys_are_refused():
    cfg = {"width": 0.125, "m2net": {"bilinear_dim": 512, "pretrained_weights": "/w.pth"}}
    assert network_options("m2net", cfg) == ({"bilinear_dim": 512}, "/w.pth")
    assert network_options("concat", cfg) == ({}, None)
    assert network_options("concat2s", {"concat2s": {"stagewise": False}}) == ({"stagewise": False}, None)
    with pytest.raises(ValueError, match=r"m2net\.bilinar_dim is not an option of M2Net; allowed: .*bilinear_dim"):
        network_options("m2net", {"m2net": {"bilinar_dim": 512}})
    with pytest.raises(ValueError, match=r"m2net\.width"):
        network_options("m2net", {"m2net": {"width": 1.0}})
    with pytest.raises(ValueError, match="takes no pretrained weights"):
        network_options("concat2s", {"concat2s": {"pretrained_weights": "/w.pth"}})
    assert isinstance(build_model("m2net", in_shape_zyx=SMALL, width=0.125, bilinear_dim=512), M2Net)

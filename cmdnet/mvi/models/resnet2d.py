"""A 2D ResNet (He et al. 2016) with channel widths scaled by `width`, for M2Net's modality-specific networks.

Layout: a 7x7 stride-2 convolution, norm, ReLU, a 3x3 stride-2 max-pool, then four stages of `BasicBlock`s
(two 3x3 convolutions with a residual connection) with 64, 128, 256, 512 x `width` channels, stages 2-4
starting with a stride-2 block, and global average pooling: `(B, in_channels, H, W) -> (B, channels[-1])`.
`layers=(3, 4, 6, 3)` is ResNet-34, `(2, 2, 2, 2)` ResNet-18.

Parameter names follow torchvision's `ResNet` (`conv1`, `bn1`, `layer1.0.conv1`, ..., `layer2.0.downsample.0`),
so at `width=1`, `norm="batch"`, `in_channels=3` the state dict of a torchvision ResNet of the same depth
(without its `fc.*` classifier) loads into it unchanged: that is how a local ImageNet checkpoint is used
(`load_backbone_state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from cmdnet.mvi.models.blocks import NormKind, make_norm, scaled_channels

RESNET_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
RESNET34_LAYERS: tuple[int, int, int, int] = (3, 4, 6, 3)


class BasicBlock(nn.Module):
    """`x -> ReLU(norm(conv3x3(ReLU(norm(conv3x3(x))))) + shortcut(x))`; the shortcut is a strided 1x1 conv +
    norm when the stride or the channel count changes, the identity otherwise."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormKind):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, channels, dims=2)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, channels, dims=2)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            make_norm(norm, channels, dims=2))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet2D(nn.Module):
    """`(B, in_channels, H, W) -> (B, channels[-1])` globally pooled features (module docstring)."""

    def __init__(self, *, in_channels: int = 3, width: float = 1.0, layers: Sequence[int] = RESNET34_LAYERS,
                 norm: NormKind = "batch"):
        super().__init__()
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts (ResNet-34: {RESNET34_LAYERS}), got {layers}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        make_norm(norm, 8, dims=2)  # validates the name before building anything
        self.in_channels = in_channels
        self.layers = layers
        self.channels = scaled_channels(width, RESNET_CHANNELS)
        self.conv1 = nn.Conv2d(in_channels, self.channels[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, self.channels[0], dims=2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        previous = self.channels[0]
        for k, (n_blocks, channels) in enumerate(zip(layers, self.channels)):
            stride = 1 if k == 0 else 2
            blocks = [BasicBlock(previous, channels, stride, norm)]
            blocks += [BasicBlock(channels, channels, 1, norm) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*blocks))
            previous = channels
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def feature_maps(self, x: Tensor) -> Tensor:
        """`(B, in_channels, H, W) -> (B, channels[-1], H/32, W/32)` (rounded up) before pooling."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"2D backbone input must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.feature_maps(x).mean(dim=(2, 3))


def read_backbone_state(path: str | Path) -> dict[str, Tensor]:
    """A backbone state dict from a local file (`torch.load(weights_only=True)`), its classifier dropped.

    Accepts a plain state dict or one under a `"state_dict"` key; a `"module."` prefix (DataParallel) is
    removed; `fc.*` (the ImageNet classifier, which M2Net replaces) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise ValueError(f"{path}: not a weights file that torch.load(weights_only=True) can read ({err})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}


def load_backbone_state(backbone: ResNet2D, state: Mapping[str, Tensor], source: str) -> None:
    """Copy `state` into `backbone`; ValueError naming `source` and the first mismatches when names or shapes
    differ (e.g. a ResNet-34 ImageNet file into a backbone of `width` 0.125)."""
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        problems = [f"{len(wrong)} shape mismatches (first: {wrong[0]})" if wrong else "",
                    f"{len(missing)} missing (first: {missing[0]})" if missing else "",
                    f"{len(unexpected)} unexpected (first: {unexpected[0]})" if unexpected else ""]
        raise ValueError(f"{source}: does not fit the 2D backbone (ResNet layers {backbone.layers}, channels "
                         f"{backbone.channels}, {backbone.in_channels} input channels): "
                         + "; ".join(p for p in problems if p)
                         + ". ImageNet ResNet weights need width 1, norm 'batch' and the same layers.")
    backbone.load_state_dict(dict(state))

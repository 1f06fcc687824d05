"""CMD-Net networks: MRI-only module, MRI-clinical-fusion module (Eq. 1), teacher and student.

Reading of the paper used here (choices the paper leaves open are marked "choice"):

- Image path (both modules): four blocks of two `3x3x3` conv + norm + ReLU with 64, 128, 256, 256 channels
  (times `width`), a 2x max-pool between blocks (choice: only along axes longer than 1, so thin volumes
  work), then one `3x3x3` conv + norm + ReLU, global average pooling and one FC layer to a `feature_dim`
  (512) vector Z. Z is left linear (choice: no ReLU), because Eq. 5 turns it into a softmax distribution
  and a ReLU would pin many entries to the same value.
- Clinical path (fusion module, Eq. 1): four FC layers chained as
  `a_1 = FC_1(c)`, `a_k = FC_k(ReLU(a_{k-1}))`, with `a_k` of 64, 128, 256, 256 values (times `width`),
  i.e. of the size of block k's channels. The scale vector of block k is `C_k = g(a_k)` and block k's output
  is multiplied channel-wise, `Y_i = C_i * X_i` (Eq. 1), before the following pool.
  Choice of `g` (`clinical_scale`): `"one_plus_tanh"` (default) `1 + tanh(a)` in (0, 2), `"sigmoid2"`
  `2 * sigmoid(a)` in (0, 2), or `"raw"` `g(a) = a` as written in the paper. The bounded forms keep every
  channel's sign (a negative scale would flip a post-ReLU map) and are centred on 1 at `a = 0`, so at
  initialisation the fusion module behaves like the image-only module modulated by the clinical data
  (the same motivation as DAFT's affine scale), instead of multiplying the maps by near-zero random numbers.
- Teacher: one fusion module per phase (separate weights), CA between Z_hbp (X) and Z_pre (Y), concatenation
  `[X_hat, Y_hat]`, then two FC layers (`2*feature_dim -> head_hidden -> n_classes`, ReLU and dropout
  between). Student: one MRI-only module per phase, CA, concatenation, one FC layer (as the paper).
- `features["hbp"]`, `features["pre"]` hold Z before CA (the outputs of the encoders, distilled by Eq. 5);
  `features["fused"]` holds the concatenation fed to the head (after CA); `features["<phase>_stage<k>"]` the
  output maps of block k (k = 1..4; for the teacher after the clinical scaling), the ends of the stages that
  similarity-preserving distillation compares.
- With one phase (ablations w/o-hbp, w/o-pre) there is no CA and `fused` is that phase's Z.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cmdnet.mvi.models.blocks import (
    check_head,
    ConvBlock, NormKind, check_images, check_in_shape, check_phases, make_norm, pool_where_possible,
    reject_clinical, scaled_channels,
)
from cmdnet.mvi.models.cross_attention import CrossAttention
from cmdnet.mvi.models.output import ModelOutput

ClinicalScale = Literal["one_plus_tanh", "sigmoid2", "raw"]
CLINICAL_SCALES: tuple[str, ...] = ("one_plus_tanh", "sigmoid2", "raw")


class MRIEncoder(nn.Module):
    """MRI-only module: `(B, in_channels, Z, Y, X) -> (B, feature_dim)`.

    `forward(x, channel_scales)` optionally multiplies block k's output channel-wise by
    `channel_scales[k]` of shape `(B, channels[k])` (used by the fusion module, Eq. 1).
    `feature_maps(x)` returns the `(B, channels[-1], z, y, x)` maps before pooling (used by baselines).
    """

    def __init__(self, *, in_shape_zyx: Sequence[int], in_channels: int = 1, width: float = 1.0,
                 feature_dim: int = 512, norm: NormKind = "batch"):
        super().__init__()
        self.in_shape_zyx = check_in_shape(in_shape_zyx)
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        make_norm(norm, 1)  # validates the name before building anything
        self.in_channels = in_channels
        self.channels = scaled_channels(width)
        self.feature_dim = feature_dim
        ins = (in_channels, *self.channels[:-1])
        self.blocks = nn.ModuleList(ConvBlock(i, o, norm) for i, o in zip(ins, self.channels))
        last = self.channels[-1]
        self.final_conv = nn.Sequential(nn.Conv3d(last, last, 3, padding=1, bias=False),
                                        make_norm(norm, last), nn.ReLU(inplace=True))
        self.fc = nn.Linear(last, feature_dim)
        for m in self.modules():  # He init for ReLU nets (as torchvision's ResNets); PyTorch's default shrinks
            if isinstance(m, nn.Conv3d):  # the signal ~1/sqrt(3) per layer, i.e. ~50x over the 9 convs
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stage_maps(self, x: Tensor, channel_scales: Sequence[Tensor] | None = None) -> list[Tensor]:
        """The four blocks' output maps (after the channel scaling, when given): the ends of the stages."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"encoder input must be (B, {self.in_channels}, Z, Y, X), got {tuple(x.shape)}")
        if channel_scales is not None and len(channel_scales) != len(self.blocks):
            raise ValueError(f"need {len(self.blocks)} channel scale vectors, got {len(channel_scales)}")
        stages = []
        for k, block in enumerate(self.blocks):
            if k > 0:
                x = pool_where_possible(x)
            x = block(x)
            if channel_scales is not None:
                x = x * channel_scales[k][:, :, None, None, None]
            stages.append(x)
        return stages

    def feature_maps(self, x: Tensor, channel_scales: Sequence[Tensor] | None = None) -> Tensor:
        return self.final_conv(self.stage_maps(x, channel_scales)[-1])

    def encode(self, x: Tensor, channel_scales: Sequence[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """`(Z (B, feature_dim), the stage maps)`."""
        stages = self.stage_maps(x, channel_scales)
        return self.fc(self.final_conv(stages[-1]).mean(dim=(2, 3, 4))), stages

    def forward(self, x: Tensor, channel_scales: Sequence[Tensor] | None = None) -> Tensor:
        return self.encode(x, channel_scales)[0]


class ClinicalScales(nn.Module):
    """Four chained FC layers on the clinical vector: `(B, n_clinical) -> [(B, channels[k])]` scale vectors."""

    def __init__(self, n_clinical: int, channels: Sequence[int], clinical_scale: ClinicalScale = "one_plus_tanh"):
        super().__init__()
        if n_clinical < 1:
            raise ValueError(f"n_clinical must be positive, got {n_clinical}")
        if clinical_scale not in CLINICAL_SCALES:
            raise ValueError(f"clinical_scale must be one of {CLINICAL_SCALES}, got {clinical_scale!r}")
        self.n_clinical = n_clinical
        self.clinical_scale = clinical_scale
        ins = (n_clinical, *channels[:-1])
        self.fcs = nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, channels))

    def forward(self, clinical: Tensor) -> list[Tensor]:
        scales = []
        h = clinical
        for k, fc in enumerate(self.fcs):
            a = fc(h if k == 0 else torch.relu(h))
            if self.clinical_scale == "one_plus_tanh":
                scales.append(1.0 + torch.tanh(a))
            elif self.clinical_scale == "sigmoid2":
                scales.append(2.0 * torch.sigmoid(a))
            else:
                scales.append(a)
            h = a
        return scales


def check_clinical(clinical: Any, n_clinical: int, batch: int) -> Tensor:
    """Raise unless `clinical` is a finite float `(batch, n_clinical)` tensor (imputed and scaled upstream)."""
    if clinical is None:
        raise TypeError("the teacher needs the clinical vector: forward(images, clinical)")
    if not isinstance(clinical, Tensor):
        raise TypeError(f"clinical must be a torch.Tensor, got {type(clinical).__name__}")
    if clinical.ndim != 2 or clinical.shape != (batch, n_clinical):
        raise ValueError(f"clinical must have shape ({batch}, {n_clinical}), got {tuple(clinical.shape)}")
    if not torch.is_floating_point(clinical):
        raise ValueError(f"clinical must be a float tensor, got {clinical.dtype}")
    if not torch.isfinite(clinical).all():
        raise ValueError("clinical holds NaN or infinite values; impute and scale it before the model")
    return clinical


class MRIClinicalFusionEncoder(nn.Module):
    """MRI-clinical-fusion module: `(B, 1, Z, Y, X), (B, n_clinical) -> (B, feature_dim)` (Eq. 1)."""

    def __init__(self, n_clinical: int, *, in_shape_zyx: Sequence[int], width: float = 1.0,
                 feature_dim: int = 512, norm: NormKind = "batch",
                 clinical_scale: ClinicalScale = "one_plus_tanh"):
        super().__init__()
        self.image = MRIEncoder(in_shape_zyx=in_shape_zyx, in_channels=1, width=width,
                                feature_dim=feature_dim, norm=norm)
        self.clinical = ClinicalScales(n_clinical, self.image.channels, clinical_scale)
        self.feature_dim = feature_dim

    def encode(self, x: Tensor, clinical: Tensor) -> tuple[Tensor, list[Tensor]]:
        clinical = check_clinical(clinical, self.clinical.n_clinical, x.shape[0])
        return self.image.encode(x, self.clinical(clinical))

    def forward(self, x: Tensor, clinical: Tensor) -> Tensor:
        return self.encode(x, clinical)[0]


def _phase_key(phase: str) -> str:
    return phase.lower()


def _encode_phases(phases: Sequence[str], encoders: nn.ModuleDict, images: Tensor, *clinical: Tensor
                   ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Z per phase `{"hbp": ..., "pre": ...}` and the stage maps `{"hbp_stage1": ..., ...}`."""
    z, stages = {}, {}
    for i, phase in enumerate(phases):
        key = _phase_key(phase)
        z[key], maps = encoders[key].encode(images[:, i:i + 1], *clinical)
        stages.update({f"{key}_stage{k}": m for k, m in enumerate(maps, start=1)})
    return z, stages


def _fuse(z: Mapping[str, Tensor], ca: CrossAttention | None) -> Tensor:
    """Concatenate `[HBP_hat, PRE_hat]` after CA; a single phase passes through."""
    if len(z) == 1:
        return next(iter(z.values()))
    x_hat, y_hat = ca(z["hbp"], z["pre"]) if ca is not None else (z["hbp"], z["pre"])
    return torch.cat([x_hat, y_hat], dim=1)


class Teacher(nn.Module):
    """CMD-Net teacher: fusion(HBP, clinical), fusion(PRE, clinical) -> CA -> concat -> FC -> ReLU -> FC.

    `forward(images (B, P, Z, Y, X), clinical (B, n_clinical)) -> ModelOutput(logits (B, n_classes),
    features {"hbp", "pre": (B, feature_dim) before CA, "fused": (B, P * feature_dim)})`; the image channels
    follow `phases`. `ca_kwargs` go to `CrossAttention` (n_tokens, softmax, scaling, residual).
    """

    def __init__(self, n_clinical: int, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"),
                 use_ca: bool = True, width: float = 1.0, feature_dim: int = 512, n_classes: int = 3,
                 norm: NormKind = "batch", clinical_scale: ClinicalScale = "one_plus_tanh",
                 head_hidden: int = 256, dropout: float = 0.0, ca_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.phases = check_phases(phases)
        self.in_shape_zyx = check_in_shape(in_shape_zyx)
        check_head(n_classes, dropout)
        self.n_clinical = n_clinical
        self.encoders = nn.ModuleDict({
            _phase_key(p): MRIClinicalFusionEncoder(n_clinical, in_shape_zyx=in_shape_zyx, width=width,
                                                    feature_dim=feature_dim, norm=norm,
                                                    clinical_scale=clinical_scale)
            for p in self.phases})
        self.ca = (CrossAttention(feature_dim, **dict(ca_kwargs or {}))
                   if use_ca and len(self.phases) == 2 else None)
        fused_dim = feature_dim * len(self.phases)
        self.head = nn.Sequential(nn.Linear(fused_dim, head_hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(head_hidden, n_classes))

    def forward(self, images: Tensor, clinical: Tensor | None = None) -> ModelOutput:
        check_images(images, len(self.phases), self.in_shape_zyx)
        clinical = check_clinical(clinical, self.n_clinical, images.shape[0])
        z, stages = _encode_phases(self.phases, self.encoders, images, clinical)
        fused = _fuse(z, self.ca)
        return ModelOutput(self.head(fused), {**z, "fused": fused, **stages})


class Student(nn.Module):
    """CMD-Net student: MRI-only(HBP), MRI-only(PRE) -> CA -> concat -> FC. Takes no clinical input.

    `forward(images (B, P, Z, Y, X)) -> ModelOutput(logits (B, n_classes), features {"hbp", "pre",
    "fused"})` with the same feature meaning as `Teacher`. Passing `clinical` raises TypeError.
    """

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"),
                 use_ca: bool = True, width: float = 1.0, feature_dim: int = 512, n_classes: int = 3,
                 norm: NormKind = "batch", ca_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.phases = check_phases(phases)
        self.in_shape_zyx = check_in_shape(in_shape_zyx)
        check_head(n_classes)
        self.encoders = nn.ModuleDict({
            _phase_key(p): MRIEncoder(in_shape_zyx=in_shape_zyx, in_channels=1, width=width,
                                      feature_dim=feature_dim, norm=norm)
            for p in self.phases})
        self.ca = (CrossAttention(feature_dim, **dict(ca_kwargs or {}))
                   if use_ca and len(self.phases) == 2 else None)
        self.head = nn.Linear(feature_dim * len(self.phases), n_classes)

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        reject_clinical(self, clinical)
        check_images(images, len(self.phases), self.in_shape_zyx)
        z, stages = _encode_phases(self.phases, self.encoders, images)
        fused = _fuse(z, self.ca)
        return ModelOutput(self.head(fused), {**z, "fused": fused, **stages})

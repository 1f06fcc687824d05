"""CMD-Net networks: MRI-only module, MRI-clinical-fusion module (Eq. 1), teacher and student.

Reading of the paper used here (choices the paper leaves open are marked "choice"):

- Image path (both modules): four blocks of two `3x3x3` conv + norm + ReLU with 64, 128, 256, 256 channels
  (times `width`), a 2x max-pool between blocks (choice: only along axes longer than 1, so thin volumes
  work), then one `3x3x3` conv + norm + ReLU, global average pooling and one FC layer to a `feature_dim`
  (512) vector Z. Choices, as the paper gives only "two 3x3 convolutional layers" per block: the 3x3x3
  kernels, the norm (BatchNorm), the ReLUs, the max-pooling, the global average pooling and He init.
  Z is left linear (choice: no ReLU), because this reading of Eq. 5 turns it into a softmax distribution
  (the paper does not say how) and a ReLU would pin many entries to the same value.
- Clinical path (fusion module, Eq. 1): "four FC layers on the input clinical data ... which feature
  channels are 64, 128, 256, and 256" (times `width`), one per image block. Choice (`clinical_path`):
  `"parallel"` (default) reads this literally, every layer maps the clinical vector itself, `a_k = FC_k(c)`;
  `"chain"` stacks them, `a_1 = FC_1(c)`, `a_k = FC_k(ReLU(a_{k-1}))` (this module's reading before
  docs/teacher.md's study). The scale vector of block k is `C_k = g(a_k)` and block k's output is multiplied
  channel-wise, `Y_i = C_i * X_i` (Eq. 1), before the following pool.
  Choice of `g` (`clinical_scale`): `"one_plus_tanh"` (default) `1 + tanh(a)` in (0, 2), `"sigmoid2"`
  `2 * sigmoid(a)` in (0, 2), or `"raw"` `g(a) = a` as written in the paper. The bounded forms keep every
  channel's sign (a negative scale would flip a post-ReLU map) and are centred on 1 at `a = 0`.
  Choice (`clinical_init`): `"zero"` (default) starts every clinical FC layer at zero, so every scale starts at
  exactly 1 and the fusion module at exactly the MRI-only module; the clinical items then enter as far as the
  loss gradient takes them, as the weights of a logistic regression grow from zero. `"random"` (PyTorch's
  default init) starts from random per-patient channel gains, 0.13-1.8 at block 1 on the default cohort:
  noise from 111 mostly uninformative features that training must first undo (docs/teacher.md).
  Options beyond the paper (`fusion="affine"`: a DAFT-style shift as well; `fusion_point="pre_activation"`:
  modulate before the block's last ReLU) are kept for study; the defaults (`scale`, `block_output`) keep Eq. 1's form.
- Teacher: one fusion module per phase (separate weights), CA between Z_hbp (X) and Z_pre (Y), concatenation
  `[X_hat, Y_hat]`, then two FC layers (`2*feature_dim -> head_hidden -> n_classes`, ReLU and dropout
  between: choice, the paper says only "two fully-connected layers"). Study options, off by default: `clinical_dropout` (drop items of the clinical vector while
  training), `clinical_to_head` (the clinical vector also concatenated to the head's input: late fusion, not
  the paper's). `clinical_head` adds the `L_clinical` head (see `Teacher`).
- Student: one MRI-only module per phase, CA, concatenation, one FC layer (as the paper).
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
ClinicalHead = Literal["none", "reconstruct", "label"]
CLINICAL_HEADS: tuple[str, ...] = ("none", "reconstruct", "label")
ClinicalInit = Literal["random", "zero"]
CLINICAL_INITS: tuple[str, ...] = ("random", "zero")
ClinicalPath = Literal["chain", "parallel"]
CLINICAL_PATHS: tuple[str, ...] = ("chain", "parallel")
FusionKind = Literal["scale", "affine"]
FUSION_KINDS: tuple[str, ...] = ("scale", "affine")
FusionPoint = Literal["block_output", "pre_activation"]
FUSION_POINTS: tuple[str, ...] = ("block_output", "pre_activation")


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
    """Four FC layers on the clinical vector: `(B, n_clinical) -> [(B, channels[k])]` scale vectors.

    `clinical_path="parallel"` (default): each layer reads the clinical vector itself, `a_k = FC_k(c)` (the
    paper's "applies four FC layers on the input clinical data to obtain four feature maps" read literally:
    every block's scale is one linear map of the items, as in a logistic regression); `"chain"`: the layers
    are stacked, `a_1 = FC_1(c)`, `a_k = FC_k(ReLU(a_{k-1}))`.
    `clinical_init="zero"` (default): weights and biases start at zero, so every scale starts at `g(0) = 1` (the
    bounded forms; `raw` would start at 0, a network with no output and no gradient, and is refused with zero
    init); `"random"`: PyTorch's default init.
    `clinical_gain`: `a_k = clinical_gain * FC_k(...)`. Adam's step does not grow with the gradient, so this
    multiplies the effective learning rate of the clinical layers by `clinical_gain` (with zero init the
    start is unchanged); see docs/teacher.md for why the clinical layers need it.
    `activations(c)` returns the pre-activations `a_k`; `forward(c)` the scales `g(a_k)` of `clinical_scale`.
    """

    def __init__(self, n_clinical: int, channels: Sequence[int], clinical_scale: ClinicalScale = "one_plus_tanh",
                 clinical_path: ClinicalPath = "parallel", clinical_init: ClinicalInit = "zero",
                 clinical_gain: float = 1.0):
        super().__init__()
        if not (isinstance(clinical_gain, (int, float)) and clinical_gain > 0):
            raise ValueError(f"clinical_gain must be a positive number, got {clinical_gain!r}")
        if n_clinical < 1:
            raise ValueError(f"n_clinical must be positive, got {n_clinical}")
        if clinical_scale not in CLINICAL_SCALES:
            raise ValueError(f"clinical_scale must be one of {CLINICAL_SCALES}, got {clinical_scale!r}")
        if clinical_path not in CLINICAL_PATHS:
            raise ValueError(f"clinical_path must be one of {CLINICAL_PATHS}, got {clinical_path!r}")
        if clinical_init not in CLINICAL_INITS:
            raise ValueError(f"clinical_init must be one of {CLINICAL_INITS}, got {clinical_init!r}")
        if clinical_scale == "raw" and clinical_init == "zero":
            # g(0) = 0: every block's output would be zero, and so every gradient; the teacher would never learn.
            raise ValueError("clinical_scale 'raw' (C_k = a_k) with clinical_init 'zero' starts every channel scale "
                             "at 0 and the teacher cannot learn; use clinical_init 'random' with 'raw'")
        self.n_clinical = n_clinical
        self.clinical_scale = clinical_scale
        self.clinical_path = clinical_path
        self.clinical_gain = float(clinical_gain)
        ins = (n_clinical, *channels[:-1]) if clinical_path == "chain" else (n_clinical,) * len(channels)
        self.fcs = nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, channels))
        if clinical_init == "zero":
            for fc in self.fcs:
                nn.init.zeros_(fc.weight)
                nn.init.zeros_(fc.bias)

    def activations(self, clinical: Tensor) -> list[Tensor]:
        if self.clinical_path == "parallel":
            return [self.clinical_gain * fc(clinical) for fc in self.fcs]
        out = []
        h = clinical
        for k, fc in enumerate(self.fcs):
            h = self.clinical_gain * fc(h if k == 0 else torch.relu(h))
            out.append(h)
        return out

    def scale(self, a: Tensor) -> Tensor:
        """`g(a)`: the channel scale of one block from its pre-activation."""
        if self.clinical_scale == "one_plus_tanh":
            return 1.0 + torch.tanh(a)
        if self.clinical_scale == "sigmoid2":
            return 2.0 * torch.sigmoid(a)
        return a

    def forward(self, clinical: Tensor) -> list[Tensor]:
        return [self.scale(a) for a in self.activations(clinical)]


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
    """MRI-clinical-fusion module: `(B, 1, Z, Y, X), (B, n_clinical) -> (B, feature_dim)` (Eq. 1).

    `fusion="scale"`: block k's maps are multiplied channel-wise, `Y_i = C_i * X_i` (Eq. 1);
    `fusion="affine"`: `Y_i = C_i * X_i + B_i` with a shift `B_k = W_k a_k` (a linear map of the same
    clinical activation, initialised to zero, so training starts from Eq. 1) as in DAFT / FiLM.
    `fusion_point="block_output"`: `X` is block k's output (after its last ReLU), as the paper's text reads;
    `"pre_activation"`: `X` is the block's last BatchNorm output and the ReLU follows the modulation (DAFT's
    placement), so a scale below one or a negative shift can switch a channel off for that patient instead of
    shrinking a map that the next BatchNorm renormalises.
    """

    def __init__(self, n_clinical: int, *, in_shape_zyx: Sequence[int], width: float = 1.0,
                 feature_dim: int = 512, norm: NormKind = "batch",
                 clinical_scale: ClinicalScale = "one_plus_tanh", clinical_path: ClinicalPath = "parallel",
                 clinical_init: ClinicalInit = "zero", clinical_gain: float = 1.0, fusion: FusionKind = "scale",
                 fusion_point: FusionPoint = "block_output"):
        super().__init__()
        if fusion not in FUSION_KINDS:
            raise ValueError(f"fusion must be one of {FUSION_KINDS}, got {fusion!r}")
        if fusion_point not in FUSION_POINTS:
            raise ValueError(f"fusion_point must be one of {FUSION_POINTS}, got {fusion_point!r}")
        self.image = MRIEncoder(in_shape_zyx=in_shape_zyx, in_channels=1, width=width,
                                feature_dim=feature_dim, norm=norm)
        self.clinical = ClinicalScales(n_clinical, self.image.channels, clinical_scale, clinical_path, clinical_init,
                                       clinical_gain)
        self.fusion = fusion
        self.fusion_point = fusion_point
        self.shifts = None
        if fusion == "affine":
            self.shifts = nn.ModuleList(nn.Linear(c, c) for c in self.image.channels)
            for lin in self.shifts:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.feature_dim = feature_dim

    def _modulated_stages(self, x: Tensor, scales: Sequence[Tensor], shifts: Sequence[Tensor] | None
                          ) -> list[Tensor]:
        stages = []
        for k, block in enumerate(self.image.blocks):
            if k > 0:
                x = pool_where_possible(x)
            if self.fusion_point == "pre_activation":
                x = block.layers[:-1](x)  # conv, norm, ReLU, conv, norm: the block without its last ReLU
            else:
                x = block(x)
            x = x * scales[k][:, :, None, None, None]
            if shifts is not None:
                x = x + shifts[k][:, :, None, None, None]
            if self.fusion_point == "pre_activation":
                x = torch.relu(x)
            stages.append(x)
        return stages

    def encode(self, x: Tensor, clinical: Tensor) -> tuple[Tensor, list[Tensor]]:
        """`(Z (B, feature_dim), the four modulated stage maps)`."""
        clinical = check_clinical(clinical, self.clinical.n_clinical, x.shape[0])
        if self.fusion == "scale" and self.fusion_point == "block_output":
            return self.image.encode(x, self.clinical(clinical))
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"encoder input must be (B, 1, Z, Y, X), got {tuple(x.shape)}")
        a = self.clinical.activations(clinical)
        scales = [self.clinical.scale(a_k) for a_k in a]
        shifts = [lin(a_k) for lin, a_k in zip(self.shifts, a)] if self.shifts is not None else None
        stages = self._modulated_stages(x, scales, shifts)
        return self.image.fc(self.image.final_conv(stages[-1]).mean(dim=(2, 3, 4))), stages

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
    `clinical_scale`, `fusion`, `fusion_point` choose the reading of Eq. 1 (`MRIClinicalFusionEncoder`).

    `clinical_head` builds the head of `L_clinical`, the "clinical data prediction" term of Eq. 6's text (the
    loss term `clinical`, `cmdnet.mvi.losses.clinical`, scores it): `"reconstruct"`: a linear map
    `fused -> n_clinical` predicting the (preprocessed) clinical vector, output as `features["clinical_pred"]`;
    `"label"`: a linear map from the clinical path's activations `a_k` (all blocks, all phases) to the
    classes, output as `features["clinical_logits"]`; `"none"` (default): no head.
    """

    def __init__(self, n_clinical: int, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"),
                 use_ca: bool = True, width: float = 1.0, feature_dim: int = 512, n_classes: int = 3,
                 norm: NormKind = "batch", clinical_scale: ClinicalScale = "one_plus_tanh",
                 clinical_path: ClinicalPath = "parallel", clinical_init: ClinicalInit = "zero",
                 clinical_gain: float = 1.0, fusion: FusionKind = "scale",
                 fusion_point: FusionPoint = "block_output", head_hidden: int = 256, dropout: float = 0.0,
                 clinical_dropout: float = 0.0, clinical_to_head: bool = False,
                 clinical_head: ClinicalHead = "none",
                 ca_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.phases = check_phases(phases)
        self.in_shape_zyx = check_in_shape(in_shape_zyx)
        check_head(n_classes, dropout)
        if not 0.0 <= clinical_dropout < 1.0:
            raise ValueError(f"clinical_dropout must be in [0, 1), got {clinical_dropout}")
        if head_hidden < 1:
            raise ValueError(f"head_hidden must be positive, got {head_hidden}")
        if clinical_head not in CLINICAL_HEADS:
            raise ValueError(f"clinical_head must be one of {CLINICAL_HEADS}, got {clinical_head!r}")
        self.n_clinical = n_clinical
        self.clinical_dropout = nn.Dropout(clinical_dropout)
        self.encoders = nn.ModuleDict({
            _phase_key(p): MRIClinicalFusionEncoder(n_clinical, in_shape_zyx=in_shape_zyx, width=width,
                                                    feature_dim=feature_dim, norm=norm,
                                                    clinical_scale=clinical_scale, clinical_path=clinical_path,
                                                    clinical_init=clinical_init, clinical_gain=clinical_gain,
                                                    fusion=fusion, fusion_point=fusion_point)
            for p in self.phases})
        self.ca = (CrossAttention(feature_dim, **dict(ca_kwargs or {}))
                   if use_ca and len(self.phases) == 2 else None)
        fused_dim = feature_dim * len(self.phases)
        self.clinical_to_head = bool(clinical_to_head)
        head_in = fused_dim + (n_clinical if clinical_to_head else 0)
        self.head = nn.Sequential(nn.Linear(head_in, head_hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(head_hidden, n_classes))
        self.clinical_head_kind = clinical_head
        self.clinical_head = None
        if clinical_head == "reconstruct":
            self.clinical_head = nn.Linear(fused_dim, n_clinical)
        elif clinical_head == "label":
            n_activations = len(self.phases) * sum(next(iter(self.encoders.values())).image.channels)
            self.clinical_head = nn.Linear(n_activations, n_classes)

    def forward(self, images: Tensor, clinical: Tensor | None = None) -> ModelOutput:
        check_images(images, len(self.phases), self.in_shape_zyx)
        clinical = check_clinical(clinical, self.n_clinical, images.shape[0])
        seen = self.clinical_dropout(clinical)  # both phases see the same items dropped
        z, stages = _encode_phases(self.phases, self.encoders, images, seen)
        fused = _fuse(z, self.ca)
        features = {**z, "fused": fused, **stages}
        if self.clinical_head_kind == "reconstruct":
            features["clinical_pred"] = self.clinical_head(fused)
        elif self.clinical_head_kind == "label":
            a = [a_k for p in self.phases for a_k in self.encoders[_phase_key(p)].clinical.activations(seen)]
            features["clinical_logits"] = self.clinical_head(torch.cat(a, dim=1))
        head_in = torch.cat([fused, seen], dim=1) if self.clinical_to_head else fused
        return ModelOutput(self.head(head_in), features)


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

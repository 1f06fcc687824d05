"""M2Net (Zhou, Fu, Zhang, Zhang, Lu, Shen, Shao; MICCAI 2020, arXiv:2006.10135) on the two MRI phases.

What M2Net is (the paper's method section and its Fig. 2) and how each part is implemented here:

1. *3D -> 2D projection.* Each modality's 3D volume is projected onto 2D images in the three directions and
   the three images form one three-channel 2D image. Here: the mean over Z (axial), over Y (coronal) and
   over X (sagittal) of each phase's crop (the paper sums the slices; the mean is the sum divided by the
   number of slices, so the three channels keep the crop's intensity range whatever the axis lengths); the
   coronal and sagittal images are resampled (bilinear, anti-aliased) to the axial image's `(Y, X)` size so
   that they can be stacked as channels (`project_to_2d`).
2. *Modality-specific networks.* One 2D CNN per modality (separate weights) extracts a feature vector from
   that modality's projection image, and each modality gets its own prediction. Here: one 2D ResNet-34 per
   phase (the depth we read for the paper; `resnet_layers` changes it) (`resnet2d.ResNet2D`, channels
   64/128/256/512 x `width`), its pooled vector `v_p` -> FC ->
   `z_p` (`feature_dim`) -> ReLU -> dropout -> FC -> logits of phase p.
3. *Multi-modal shared network.* The modalities' features are fused by compact bilinear pooling to exploit
   their correlations. Here: `phi = TensorSketch(v_pre, v_hbp)` of size `bilinear_dim`
   (`bilinear.CompactBilinearPooling`), signed square root and L2 normalisation, FC -> `z_shared`
   (`feature_dim`) -> ReLU -> dropout -> FC -> shared logits.
4. *Integration.* The outputs of the modality-specific networks and of the shared network are integrated
   into the final prediction. Here: their softmax outputs, as log-probabilities, are concatenated,
   `(B, 3 * n_classes)`, and one FC layer gives the model's logits; the FC starts as the mean of the three
   log-probability vectors (the normalised product of the heads' distributions) and learns from there.
   `integration="probs"` feeds the probabilities themselves to a default-initialised FC, as the paper's
   figure reads; on our 8-epoch budget that layer stayed near uniform (inner-validation loss ~ln 3, see
   docs/baselines.md), because probabilities near 1/3 give it almost no signal to start from.

Training is end to end (the paper's point against two-step radiomics pipelines). Every prediction head is
supervised: the final logits by the task's loss, the per-phase and shared logits by the same loss through
`features["aux_logits_<head>"]`, trained by the objective's `aux_focal` term (`mvi.objectives.auxiliary_heads`).

Remaining deviations (also in docs/baselines.md): the paper predicts overall survival of brain tumours (three
classes) from four MR modalities, projects a fixed cube cropped around the tumour, and adds supplementary
non-image features before its modality heads; here two phases (PRE, HBP), our crops, images only, as every
Table-1 baseline. ImageNet weights cannot be downloaded here, so the 2D networks are trained from scratch by
default; `load_pretrained_backbones` loads a local torchvision ResNet-34 state dict into every phase's
backbone (width 1 only). The FC sizes after the backbones and whether the modality/shared heads had their
own losses are not stated; the sizes here follow the other baselines (`feature_dim`) and the per-head losses
are our reading of "the outputs of each network".
Features: "pre", "hbp" (`z_p`, `(B, feature_dim)`), "shared" (`z_shared`), "bilinear" (`phi` after
normalisation, `(B, bilinear_dim)`), "fused" (the integration layer's input, `(B, 3 * n_classes)`), and the
three auxiliary logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmdnet.mvi.models.baselines import _PhaseBaseline
from cmdnet.mvi.models.bilinear import CompactBilinearPooling, signed_sqrt_l2
from cmdnet.mvi.models.blocks import NormKind
from cmdnet.mvi.models.output import ModelOutput
from cmdnet.mvi.models.resnet2d import RESNET34_LAYERS, ResNet2D, load_backbone_state, read_backbone_state

PROJECTION_AXES: tuple[str, str, str] = ("axial", "coronal", "sagittal")  # the mean over Z, Y, X
Integration = Literal["log_probs", "probs"]
INTEGRATIONS: tuple[str, ...] = ("log_probs", "probs")


def project_to_2d(volume: Tensor) -> Tensor:
    """`(B, Z, Y, X) -> (B, 3, Y, X)`: the mean over Z, over Y and over X, each resampled to `(Y, X)`.

    Channel 0 is the axial projection `(Y, X)`; channel 1 the coronal `(Z, X)` and channel 2 the sagittal
    `(Z, Y)` one, resampled bilinearly (anti-aliased where an axis shrinks) so Z runs along the image rows.
    """
    if volume.ndim != 4:
        raise ValueError(f"volume must be (B, Z, Y, X), got {tuple(volume.shape)}")
    size = tuple(volume.shape[2:])
    views = [volume.mean(dim=1), volume.mean(dim=2), volume.mean(dim=3)]
    resized = [v if tuple(v.shape[1:]) == size else
               F.interpolate(v.unsqueeze(1), size=size, mode="bilinear", align_corners=False,
                             antialias=any(a > b for a, b in zip(v.shape[1:], size))).squeeze(1)
               for v in views]
    return torch.stack(resized, dim=1)


def _head(in_dim: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(in_dim, n_classes))


class M2Net(_PhaseBaseline):
    """M2Net (Zhou et al. 2020): 2D projections, modality-specific 2D ResNets, compact bilinear shared
    network, integration of all outputs (module docstring for the details and the deviations)."""

    AUX_PREFIX = "aux_logits_"
    SHARED = "shared"

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"), width: float = 1.0,
                 feature_dim: int = 512, n_classes: int = 3, norm: NormKind = "batch",
                 resnet_layers: Sequence[int] = RESNET34_LAYERS, bilinear_dim: int = 8192,
                 integration: Integration = "log_probs", dropout: float = 0.0, sketch_seed: int = 0):
        super().__init__(in_shape_zyx=in_shape_zyx, phases=phases, n_classes=n_classes, dropout=dropout)
        if len(self.phases) < 2:
            raise ValueError(f"M2Net fuses modalities and needs two phases, got {self.phases}")
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        if integration not in INTEGRATIONS:
            raise ValueError(f"integration must be one of {INTEGRATIONS}, got {integration!r}")
        self.integration_input = integration
        keys = [p.lower() for p in self.phases]
        self.backbones = nn.ModuleDict({k: ResNet2D(in_channels=len(PROJECTION_AXES), width=width,
                                                    layers=resnet_layers, norm=norm) for k in keys})
        channels = self.backbones[keys[0]].out_channels
        self.phase_fc = nn.ModuleDict({k: nn.Linear(channels, feature_dim) for k in keys})
        self.phase_heads = nn.ModuleDict({k: _head(feature_dim, n_classes, dropout) for k in keys})
        self.bilinear = CompactBilinearPooling([channels] * len(keys), bilinear_dim, seed=sketch_seed)
        self.shared_fc = nn.Linear(bilinear_dim, feature_dim)
        self.shared_head = _head(feature_dim, n_classes, dropout)
        n_heads = len(keys) + 1
        self.integration = nn.Linear(n_classes * n_heads, n_classes)
        if integration == "log_probs":  # start as the normalised product of the heads' distributions
            with torch.no_grad():
                self.integration.weight.copy_(torch.eye(n_classes).repeat(1, n_heads) / n_heads)
                self.integration.bias.zero_()

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        self._check(images, clinical)
        v = {p.lower(): self.backbones[p.lower()](project_to_2d(images[:, i]))
             for i, p in enumerate(self.phases)}
        z = {k: self.phase_fc[k](x) for k, x in v.items()}
        head_logits = {k: self.phase_heads[k](x) for k, x in z.items()}
        phi = signed_sqrt_l2(self.bilinear(*v.values()))
        z_shared = self.shared_fc(phi)
        head_logits[self.SHARED] = self.shared_head(z_shared)
        normalise = torch.log_softmax if self.integration_input == "log_probs" else torch.softmax
        fused = torch.cat([normalise(x, dim=1) for x in head_logits.values()], dim=1)
        aux = {self.AUX_PREFIX + k: x for k, x in head_logits.items()}
        return ModelOutput(self.integration(fused),
                           {**z, self.SHARED: z_shared, "bilinear": phi, "fused": fused, **aux})

    @classmethod
    def auxiliary_logits(cls, output: ModelOutput) -> dict[str, Tensor]:
        """The per-phase and shared heads' logits `{"pre", "hbp", "shared": (B, n_classes)}` of an output."""
        return {k[len(cls.AUX_PREFIX):]: v for k, v in output.features.items() if k.startswith(cls.AUX_PREFIX)}

    def load_pretrained_backbones(self, path: str | Path) -> None:
        """Load a local 2D ResNet state dict (e.g. torchvision's ImageNet ResNet-34, `fc.*` ignored) into every
        phase's backbone, as M2Net initialises each modality-specific network from the same pretrained model.
        ValueError naming the file and the first mismatch when it does not fit (module `resnet2d`)."""
        state = read_backbone_state(path)
        for backbone in self.backbones.values():
            load_backbone_state(backbone, state, str(path))

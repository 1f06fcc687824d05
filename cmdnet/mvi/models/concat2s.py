"""Concat_2S: the stage-wise deep fusion network of Zhou, Thung, Zhu and Shen (Human Brain Mapping 2019,
"Effective feature learning and fusion of multimodality data using stage-wise deep neural network for
dementia diagnosis"), on the two MRI phases.

What the paper does (its Methods, "stage-wise" framework, and Fig. 1): stage 1 trains one network per
modality, independently, to predict the label; its last hidden layer is that modality's latent
representation. Stage 2 takes the (fixed) stage-1 latents of each pair of modalities, concatenated, and trains
a network that learns their joint latent representation, again supervised by the label. Stage 3 fuses the
pairs' joint latents and predicts the diagnosis. Each stage is trained on its own, after the previous one,
with the samples available for its modalities.

Implemented here (`stagewise=True`, the default, trained by `cmdnet.mvi.training.stagewise.fit_stagewise`):
- stage 1, per phase p: the 3D CNN `MRIEncoder` (64/128/256/256 x `width` channels) -> latent `z_p`
  (`feature_dim`) -> ReLU -> dropout -> FC -> logits of phase p; PRE and HBP are trained one after the other,
  each selected at its own best epoch on the inner validation split;
- stage 2: `[z_pre, z_hbp]` -> FC (`head_hidden`, the joint latent) -> ReLU -> dropout -> FC -> the model's
  logits, trained with the stage-1 networks frozen (no gradient, BatchNorm in eval mode), selected on the
  inner validation split. With two phases there is one modality pair, so the paper's stage 3 has a single
  joint latent to fuse: it is merged into stage 2 (the joint latent's output layer is the diagnosis); hence
  two stages.
Stage 1 is frozen by the trainer (no gradient, eval mode), not by `forward`: the network stays one
differentiable function, so Grad-CAM of its output reaches the encoders' maps (`cmdnet.product.saliency`).

`stagewise=False` is the joint variant: both stages trained together in one run, the loss being
`L(logits) + w * mean_p L(logits_p)` (the per-phase logits come out as `features["aux_logits_<phase>"]`; the
objective's `aux_focal` term, with its weight w, trains them: `mvi.objectives.auxiliary_heads`).

Remaining deviations (also in docs/baselines.md): Zhou et al. fed region-of-interest features of MRI and PET
and SNP genotypes to fully connected networks; here each stage-1 network is the 3D CNN shared by the
baselines, on whole-tumour crops. All our patients have both phases, so every stage trains on the same
patients. The same training recipe (epochs, optimiser, augmentation) is used for every stage; the paper's
per-stage layer sizes and dropout are for its feature inputs and are not reproduced.
Features: "pre", "hbp" (`z_p`, `(B, feature_dim)`), "fused" (`[z_pre, z_hbp]`), "aux_logits_<phase>".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from cmdnet.mvi.models.baselines import _mlp_head, _PhaseBaseline
from cmdnet.mvi.models.blocks import NormKind
from cmdnet.mvi.models.output import ModelOutput
from cmdnet.mvi.models.stages import TrainingStage


class Concat2S(_PhaseBaseline):
    """Concat_2S (Zhou et al. 2019): per-phase networks trained first, then the fusion stage on their latents
    (module docstring for the details and the deviations)."""

    AUX_PREFIX = "aux_logits_"

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"), width: float = 1.0,
                 feature_dim: int = 512, n_classes: int = 3, norm: NormKind = "batch", head_hidden: int = 256,
                 stagewise: bool = True, dropout: float = 0.0):
        super().__init__(in_shape_zyx=in_shape_zyx, phases=phases, n_classes=n_classes, dropout=dropout)
        self.stagewise = bool(stagewise)
        self.encoders = self._per_phase_encoders(width=width, feature_dim=feature_dim, norm=norm)
        self.phase_heads = nn.ModuleDict({
            p.lower(): nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(feature_dim, n_classes))
            for p in self.phases})
        self.head = _mlp_head(feature_dim * len(self.phases), head_hidden, n_classes, dropout)

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        self._check(images, clinical)
        z = {p.lower(): self.encoders[p.lower()](images[:, i:i + 1]) for i, p in enumerate(self.phases)}
        aux = {self.AUX_PREFIX + k: self.phase_heads[k](v) for k, v in z.items()}
        fused = torch.cat(list(z.values()), dim=1)
        return ModelOutput(self.head(fused), {**z, **aux, "fused": fused})

    def phase_logits(self, images: Tensor, phase: str) -> Tensor:
        """Stage 1 of `phase` alone: `(B, P, Z, Y, X) -> (B, n_classes)` (the other phase is not computed)."""
        self._check(images, None)
        i = self.phases.index(phase)
        key = phase.lower()
        return self.phase_heads[key](self.encoders[key](images[:, i:i + 1]))

    def fusion_logits(self, images: Tensor) -> Tensor:
        """Stage 2's output, the model's logits."""
        return self(images).logits

    def training_stages(self) -> list[TrainingStage]:
        """Stage 1 per phase (encoder + phase head), then stage 2 (the fusion network); `[]` when joint."""
        if not self.stagewise:
            return []
        stage1 = [TrainingStage(f"stage1_{p.lower()}", (self.encoders[p.lower()], self.phase_heads[p.lower()]),
                                partial(self.phase_logits, phase=p)) for p in self.phases]
        return [*stage1, TrainingStage("stage2", (self.head,), self.fusion_logits)]

    @classmethod
    def auxiliary_logits(cls, output: ModelOutput) -> dict[str, Tensor]:
        """Per-phase stage-1 logits `{phase: (B, n_classes)}` (lower-case phase names) from an output."""
        return {k[len(cls.AUX_PREFIX):]: v for k, v in output.features.items() if k.startswith(cls.AUX_PREFIX)}

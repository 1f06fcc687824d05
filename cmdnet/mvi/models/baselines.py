"""Image-only comparison networks of Table 1 (CMD-Net paper), re-implemented on a common 3D CNN backbone.

All take `images (B, P, Z, Y, X)` with phases `(PRE, HBP)` (or the `phases` given), refuse a clinical
input, and return `ModelOutput(logits (B, n_classes), features)`. For a fair comparison they share the
`MRIEncoder` backbone of `cmdnet_nets` (four conv blocks, 64-128-256-256 x `width`); what is specific to
each cited method is the way the phases are fused, which is what Table 1 compares. KD_ours and SP_ours are
the CMD-Net `Student`/`Teacher` trained with other losses (`cmdnet.mvi.losses`), not separate networks.
M2Net is in `m2net.py`: its defining structure is 2D (projections of the volumes, 2D ResNets, bilinear
fusion), so it does not use the 3D backbone. Concat_2S (3D backbone, stage-wise training) is in `concat2s.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cmdnet.mvi.models.blocks import check_head, NormKind, check_images, check_in_shape, check_phases, reject_clinical
from cmdnet.mvi.models.teacher_student import MRIEncoder
from cmdnet.mvi.models.output import ModelOutput


class _PhaseBaseline(nn.Module):
    """Common checks and per-phase encoders for the baselines."""

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str], n_classes: int, dropout: float):
        super().__init__()
        self.phases = check_phases(phases)
        self.in_shape_zyx = check_in_shape(in_shape_zyx)
        check_head(n_classes, dropout)
        self.n_classes = n_classes

    def _check(self, images: Tensor, clinical: object) -> None:
        reject_clinical(self, clinical)
        check_images(images, len(self.phases), self.in_shape_zyx)

    def _per_phase_encoders(self, *, width: float, feature_dim: int, norm: NormKind) -> nn.ModuleDict:
        return nn.ModuleDict({p.lower(): MRIEncoder(in_shape_zyx=self.in_shape_zyx, in_channels=1, width=width,
                                                    feature_dim=feature_dim, norm=norm) for p in self.phases})


def _mlp_head(in_dim: int, hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, n_classes))


class ConcatNet(_PhaseBaseline):
    """"Concat" (Nie et al. 2019): per-phase 3D CNN feature extractors, features concatenated, then FC layers.

    Implemented: one 3D CNN per phase (separate weights, the "multi-channel" feature learning of Nie et
    al.), their feature vectors concatenated and classified by two FC layers. Deviations: Nie et al. trained
    the per-modality CNNs first and fed the extracted features (plus clinical ones) to an SVM for survival
    time; here the whole network is trained end to end with a softmax head on images only.
    Features: one `(B, feature_dim)` entry per phase ("pre", "hbp") and "fused" (the concatenation).
    """

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"), width: float = 1.0,
                 feature_dim: int = 512, n_classes: int = 3, norm: NormKind = "batch", head_hidden: int = 256,
                 dropout: float = 0.0):
        super().__init__(in_shape_zyx=in_shape_zyx, phases=phases, n_classes=n_classes, dropout=dropout)
        self.encoders = self._per_phase_encoders(width=width, feature_dim=feature_dim, norm=norm)
        self.head = _mlp_head(feature_dim * len(self.phases), head_hidden, n_classes, dropout)

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        self._check(images, clinical)
        z = {p.lower(): self.encoders[p.lower()](images[:, i:i + 1]) for i, p in enumerate(self.phases)}
        fused = torch.cat(list(z.values()), dim=1)
        return ModelOutput(self.head(fused), {**z, "fused": fused})


class CNN3D(_PhaseBaseline):
    """"3DCNN" (Jiang et al. 2021): one plain 3D CNN on the phases stacked as input channels.

    Implemented: early fusion, the phases enter as channels of a single 3D CNN whose pooled feature is
    classified by an FC layer. Deviations: Jiang et al. worked on CT phases and combined the CNN with an
    XGBoost model of clinical/radiomic features; only the image CNN is reproduced here, on the shared
    backbone instead of their exact layer list. Note that stacking assumes the phases are co-registered
    crops of the same grid (the CMD-Net data are not registered; this is part of what the baseline tests).
    Features: "fused" `(B, feature_dim)`.
    """

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"), width: float = 1.0,
                 feature_dim: int = 512, n_classes: int = 3, norm: NormKind = "batch", dropout: float = 0.0):
        super().__init__(in_shape_zyx=in_shape_zyx, phases=phases, n_classes=n_classes, dropout=dropout)
        self.encoder = MRIEncoder(in_shape_zyx=self.in_shape_zyx, in_channels=len(self.phases), width=width,
                                  feature_dim=feature_dim, norm=norm)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(feature_dim, n_classes))

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        self._check(images, clinical)
        fused = self.encoder(images)
        return ModelOutput(self.head(fused), {"fused": fused})


class LSTMNet(_PhaseBaseline):
    """"LSTM" (Men et al. 2019): per-phase 3D CNN features read as a sequence by an LSTM.

    Implemented: a 3D CNN maps each phase to a feature vector; the vectors, in phase order PRE -> HBP
    (the order of contrast uptake), form a sequence for a one-layer LSTM whose last hidden state is
    classified by an FC layer. The CNN is shared across phases (`share_encoder=True`, a time-distributed CNN
    as in Men et al.); `share_encoder=False` gives each phase its own CNN. Deviations: Men et al. used
    several dynamic contrast-enhanced phases (a longer sequence); here the sequence has the available phases
    (two), and the backbone is the shared one. Features: per-phase vectors, "sequence" `(B, P, feature_dim)`
    and "fused" (the last hidden state, `(B, hidden_size)`).
    """

    def __init__(self, *, in_shape_zyx: Sequence[int], phases: Sequence[str] = ("PRE", "HBP"), width: float = 1.0,
                 feature_dim: int = 512, n_classes: int = 3, norm: NormKind = "batch", hidden_size: int = 256,
                 share_encoder: bool = True, dropout: float = 0.0):
        super().__init__(in_shape_zyx=in_shape_zyx, phases=phases, n_classes=n_classes, dropout=dropout)
        self.share_encoder = share_encoder
        if share_encoder:
            self.encoder = MRIEncoder(in_shape_zyx=self.in_shape_zyx, in_channels=1, width=width,
                                      feature_dim=feature_dim, norm=norm)
        else:
            self.encoders = self._per_phase_encoders(width=width, feature_dim=feature_dim, norm=norm)
        self.lstm = nn.LSTM(feature_dim, hidden_size, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, n_classes))

    def forward(self, images: Tensor, clinical: None = None) -> ModelOutput:
        self._check(images, clinical)
        if self.share_encoder:
            b, p = images.shape[:2]
            seq = self.encoder(images.reshape(b * p, 1, *images.shape[2:])).reshape(b, p, -1)
        else:
            seq = torch.stack([self.encoders[ph.lower()](images[:, i:i + 1])
                               for i, ph in enumerate(self.phases)], dim=1)
        _, (h_n, _) = self.lstm(seq)
        fused = h_n[-1]
        z = {ph.lower(): seq[:, i] for i, ph in enumerate(self.phases)}
        return ModelOutput(self.head(fused), {**z, "sequence": seq, "fused": fused})

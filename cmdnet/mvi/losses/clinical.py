"""`L_clinical` of CMD-Net's Eq. 6 text: "the self-supervised loss for the clinical data prediction".

The paper names the term but never defines it (Eq. 6 itself leaves it out). The reading used here: the
teacher predicts its own clinical input back from the feature its classifier reads, and is penalised by the
squared error. It is self-supervised (the target is the input data, no label), it is a prediction of the
clinical data, and it asks the teacher's fused feature, the one the class head and the distillation losses
see, to carry the clinical items. docs/teacher.md says why this reading was chosen over the alternatives.

The term `clinical` (`mvi.objectives.<objective>.clinical: {weight: w}`) scores the head the teacher builds with
`mvi.model.teacher.clinical_head`: `reconstruct` (this reading) or `label` (the label predicted from the clinical
path alone, scored by the focal loss, kept for comparison).
"""

from __future__ import annotations

from torch import Tensor, nn

from cmdnet.mvi.losses._reduce import Reduction, check_reduction, reduce
from cmdnet.mvi.losses.focal import FocalTerm
from cmdnet.mvi.losses.terms import NoSettings, Step, TermContext, loss_term


class ClinicalPredictionLoss(nn.Module):
    """Mean squared error between predicted and observed preprocessed clinical vectors:

        L = (1/B) sum_i (1/F) sum_f ( c_hat_if - c_if )^2

    `c` is the clinical vector exactly as the teacher receives it (`cmdnet.data.clinical.ClinicalPreprocessor`:
    numeric items standardised on the training fold, binary items, one-hot categories and missing
    indicators as 0/1), so every numeric item weighs as one unit-variance target and a 0/1 feature enters as
    its Brier score. "mean" averages over the batch, "sum" sums over it, "none" returns `(B,)`.

    Shapes: `prediction`, `target` `(B, F)`, float, finite. Gradients flow into `prediction` only: the
    target is the model's input and is detached.
    """

    def __init__(self, *, reduction: Reduction = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        if prediction.ndim != 2 or prediction.shape != target.shape:
            raise ValueError(f"prediction and target must both be (B, F); got {tuple(prediction.shape)} and "
                             f"{tuple(target.shape)}")
        if prediction.shape[1] == 0:
            raise ValueError("the clinical vector has no features")
        per_sample = (prediction - target.detach()).pow(2).mean(dim=1)
        return reduce(per_sample, self.reduction)


@loss_term
class ClinicalTerm(FocalTerm):
    """`clinical`: `L_clinical` of the teacher's clinical-prediction head (`features["clinical_pred"]`: the MSE
    against the clinical vector it was given; `features["clinical_logits"]`: the focal loss against the label)."""

    name = "clinical"

    def __init__(self, settings: NoSettings, context: TermContext):
        super().__init__(settings, context)
        self.reconstruction = ClinicalPredictionLoss()

    def forward(self, step: Step) -> Tensor:
        features = step.output.features
        if "clinical_pred" in features:
            if step.clinical is None:
                raise ValueError("loss term clinical: the step has no clinical vector to reconstruct")
            return self.reconstruction(features["clinical_pred"], step.clinical)
        if "clinical_logits" in features:
            return self.loss(features["clinical_logits"], step.labels)
        raise ValueError("loss term clinical needs a teacher with a clinical-prediction head: set "
                         "mvi.model.teacher.clinical_head to reconstruct or label (or use a teacher registered with it)")

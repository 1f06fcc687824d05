"""The built-in synthetic cohort: DICOM series, tumour masks, cohort and clinical sheets.

    from cmdnet.data.synth import SynthParams, write_cohort
    write_cohort(Path("synthetic"), SynthParams(n_patients=80, seed=0))

The generative model (what each label changes, and how strongly) is documented in docs/synthetic_cohort.md.
"""

from cmdnet.data.synth.cohort import PatientPlan, plan_cohort, render_phase, write_cohort
from cmdnet.data.synth.params import PHASES, SynthParams, exact_counts, patient_ids

__all__ = ["PHASES", "PatientPlan", "SynthParams", "exact_counts", "patient_ids", "plan_cohort",
           "render_phase", "write_cohort"]

# cmdnet: liver-MRI cohort -> CMD-Net (MVI, 3 classes) and local/non-local fusion (HCC grade).
# `snakemake --cores all` runs everything on the default config (the built-in synthetic cohort).
# Stages, in order: rules/cohort.smk (synthetic cohort, labels, clinical cleaning, folds),
# rules/images.smk (DICOM -> NIfTI -> ROI arrays), rules/mvi.smk (teachers, methods, predictions),
# rules/grade.smk (patch models), rules/evaluate.smk (statistics, tables, figures),
# rules/final.smk (the model bundle for `cmdnet predict`).

import os

# The defaults always come from the workflow's own config.yaml; `--configfile FILE` overrides keys of it.
configfile: os.path.join(workflow.basedir, "config.yaml")


# The landing page of `snakemake --report`: what ran, on which cohort, at which scale.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/cohort.smk"
include: "rules/images.smk"
include: "rules/mvi.smk"
include: "rules/grade.smk"
include: "rules/evaluate.smk"
include: "rules/final.smk"


onerror:
    print_job_errors(WORKFLOW_STARTED)


rule all:
    input:
        [files for outputs in (mvi_table_outputs(False), grade_table_outputs(False)) for files in outputs.values()],
        "results/mvi/summary.csv",
        "results/grade/metrics_per_fold.csv",
        FINAL_BUNDLE,
        "results/run_description.html",
        "results/mvi/summary.html",

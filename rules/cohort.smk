# The cohort: the synthetic default (when no sheet is configured), labels, clinical cleaning, folds.


if SYNTHETIC:

    rule synthetic_cohort:
        output:
            sheet=COHORT_SHEET,
            clinical_sheet=CLINICAL_SHEET,
            dictionary=CLINICAL_DICTIONARY,
            dicom=directory(f"{COHORT_DIR}/dicom"),
            masks=directory(f"{COHORT_DIR}/masks"),
        params:
            synthetic=config["synthetic"],
        log:
            "results/logs/synthetic_cohort.log",
        benchmark:
            "results/benchmarks/synthetic_cohort.tsv"
        conda:
            "../envs/data.yaml"
        script:
            "../workflow_scripts/synthetic_cohort.py"


rule cohort_labels:
    input:
        **({"sheet": COHORT_SHEET} if SYNTHETIC else {}),
    output:
        labels="results/cohort/labels.parquet",
    params:
        **({"phases": ALL_PHASES} if SYNTHETIC else
           {"label_cells": {pid: source.labels for pid, source in SOURCES.items()}}),
        cohort={k: config["cohort"][k] for k in ("columns", "mvi_labels", "grade_labels")},
    log:
        "results/logs/cohort_labels.log",
    benchmark:
        "results/benchmarks/cohort_labels.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/cohort_labels.py"


rule clean_clinical:
    input:
        labels="results/cohort/labels.parquet",
        clinical_sheet=CLINICAL_SHEET,
        dictionary=CLINICAL_DICTIONARY,
    output:
        table="results/clinical/clinical_clean.parquet",
        missingness="results/clinical/missingness.csv",  # in the report as missingness.html (rule tables_html)
    params:
        cohort={k: config["cohort"][k] for k in ("columns", "identifier_columns", "out_of_range")},
    log:
        "results/logs/clean_clinical.log",
    benchmark:
        "results/benchmarks/clean_clinical.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/clean_clinical.py"


rule make_folds:
    input:
        labels="results/cohort/labels.parquet",
    output:
        mvi="results/folds/mvi.parquet",
        mvi_inner="results/folds/mvi_inner.parquet",
        grade="results/folds/grade.parquet",
    params:
        folds=config["folds"],
        seed=config["seed"],
    log:
        "results/logs/make_folds.log",
    benchmark:
        "results/benchmarks/make_folds.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/make_folds.py"

# The cohort: the synthetic default (when no sheet is configured), labels, clinical cleaning, folds.


if SYNTHETIC:

    rule synthetic_cohort:
        output:
            directory(COHORT_DIR),
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
        SHEET_INPUT,
    output:
        "results/cohort/labels.parquet",
    params:
        sheet=COHORT_SHEET,
        phases=ALL_PHASES,
        cohort=config["cohort"],
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
        COHORT_INPUT,
        labels="results/cohort/labels.parquet",
    output:
        table="results/clinical/clinical_clean.parquet",
        missingness="results/clinical/missingness.csv",  # in the report as missingness.html (rule tables_html)
    params:
        clinical_sheet=CLINICAL_SHEET,
        dictionary=CLINICAL_DICTIONARY,
        cohort=config["cohort"],
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

# Statistics, tables and figures of both papers (gathered by `snakemake --report results/report.html`).

MVI_FIGURES = ["roc_pairwise", "roc_any_mvi", "auc_intervals", "confusion_matrix", "calibration", "decision_curves"]
MVI_CURVES = [f"training_curves_{name}" for name in MVI_NETWORKS + MVI_TEACHERS]


rule evaluate_mvi:
    input:
        methods=mvi_predictions("methods", MVI_METHODS),
        teachers=mvi_predictions("teachers", MVI_TEACHERS),
        validation=mvi_predictions("methods", MVI_METHODS, "validation_predictions")
        + mvi_predictions("teachers", MVI_TEACHERS, "validation_predictions"),
        histories=[f"results/mvi/methods/{m}/repeat0/fold0/history.csv" for m in MVI_NETWORKS]
        + [f"results/mvi/teachers/{t}/repeat0/fold0/history.csv" for t in MVI_TEACHERS],
    output:
        **mvi_table_outputs(),
        summary="results/mvi/summary.csv",
        per_fold="results/mvi/metrics_per_fold.csv",
        delong="results/mvi/delong_pairwise.csv",
        figures=[mvi_figure(name) for name in MVI_FIGURES]
        + report(expand("results/figures/mvi/{figure}.png", figure=MVI_CURVES), category="Training curves",
                 subcategory="MVI (CMD-Net)", caption="../report/mvi_training_curves.rst"),
    params:
        method_names=MVI_METHODS,
        teacher_names=MVI_TEACHERS,
        reference=config["mvi"]["reference_method"],
        seed=config["seed"],
        n_boot=config["evaluation"]["bootstrap_samples"],
    log:
        "results/logs/evaluate_mvi.log",
    benchmark:
        "results/benchmarks/evaluate_mvi.tsv"
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/evaluate_mvi.py"


rule evaluate_grade:
    input:
        predictions=expand("results/grade/repeat{repeat}/fold{fold}/predictions.parquet",
                           repeat=GRADE_REPEATS, fold=GRADE_FOLDS),
        diagnostics=expand("results/grade/repeat{repeat}/fold{fold}/diagnostics.json",
                           repeat=GRADE_REPEATS, fold=GRADE_FOLDS),
        manifest="results/datasets/grade_manifest.parquet",
        labels="results/cohort/labels.parquet",
    output:
        **grade_table_outputs(),
        per_fold="results/grade/metrics_per_fold.csv",
        pooled_auc="results/grade/pooled_auc_per_repeat.csv",
        patches="results/grade/patch_statistics.csv",
        dcca="results/grade/dcca_correlations.csv",
        figures=report(grade_figures(), category="Figures", subcategory="Grade (local/non-local fusion)",
                       caption="../report/grade_figures.rst"),
    log:
        "results/logs/evaluate_grade.log",
    benchmark:
        "results/benchmarks/evaluate_grade.tsv"
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/evaluate_grade.py"


rule tables_html:
    """The results CSVs a reader reads, as HTML pages the report shows inline."""
    input:
        csvs=["results/mvi/summary.csv", "results/mvi/delong_pairwise.csv", "results/clinical/missingness.csv"],
    output:
        html=[report("results/mvi/summary.html", category="Tables", subcategory="MVI (CMD-Net)",
                     caption="../report/mvi_summary.rst"),
              report("results/mvi/delong_pairwise.html", category="Statistical tests",
                     caption="../report/mvi_delong.rst"),
              report("results/clinical/missingness.html", category="Data", caption="../report/missingness.rst")],
    params:
        titles=["Every MVI method and teacher: metrics over folds and the pooled AUC with its CI",
                "DeLong's test of the reference method against each method, per class pair",
                "Missing and out-of-range values per clinical item"],
    log:
        "results/logs/tables_html.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/tables_html.py"


rule describe_run:
    """The run's facts for the report: cohort kind, patients per class, scale, commit, config digest."""
    input:
        results_of_this_run,  # rewritten with any result
        labels="results/cohort/labels.parquet",
    output:
        description=report("results/run_description.html", category="About this run",
                           caption="../report/run_description.rst"),
    params:
        config=config,  # any configuration change rewrites the description
        repo=workflow.basedir,
    log:
        "results/logs/describe_run.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/describe_run.py"

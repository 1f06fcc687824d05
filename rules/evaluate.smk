# Statistics, tables and figures of both papers (gathered by `snakemake --report results/report.html`).

MVI_FIGURES = ["roc_pairwise", "roc_any_mvi", "auc_intervals", "confusion_matrix", "calibration"]
MVI_CURVES = [f"training_curves_{name}" for name in MVI_METHODS + MVI_TEACHERS]



rule evaluate_mvi:
    input:
        methods=expand("results/mvi/methods/{method}/oof_predictions.parquet", method=MVI_METHODS),
        teachers=expand("results/mvi/teachers/{teacher}/oof_predictions.parquet", teacher=MVI_TEACHERS),
        histories=expand("results/mvi/{kind}/fold0/history.csv",
                         kind=[f"methods/{m}" for m in MVI_METHODS] + [f"teachers/{t}" for t in MVI_TEACHERS]),
    output:
        tables=report(mvi_tables(["html"]), category="Tables", subcategory="MVI (CMD-Net)",
                      caption="../report/mvi_tables.rst"),
        table_files=mvi_tables(["md", "csv", "tex"]),
        summary="results/mvi/summary.csv",
        per_fold="results/mvi/metrics_per_fold.csv",
        delong="results/mvi/delong_pairwise.csv",
        figures=[mvi_figure(name) for name in MVI_FIGURES],
        curves=report(expand("results/figures/mvi/{figure}.png", figure=MVI_CURVES), category="Training curves",
                      subcategory="MVI (CMD-Net)", caption="../report/mvi_training_curves.rst"),
    params:
        methods=MVI_METHODS,
        teachers=MVI_TEACHERS,
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
        spectra="results/grade/repeat0/fold0/cifa_spectra.json",
    output:
        tables=report(grade_tables(["html"]), category="Tables", subcategory="Grade (local/non-local fusion)",
                      caption="../report/grade_tables.rst"),
        table_files=grade_tables(["md", "csv", "tex"]),
        per_fold="results/grade/metrics_per_fold.csv",
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
    """The results CSVs that are tables a reader reads, as HTML pages the report shows inline."""
    input:
        summary="results/mvi/summary.csv",
        delong="results/mvi/delong_pairwise.csv",
        missingness="results/clinical/missingness.csv",
    output:
        summary=report("results/mvi/summary.html", category="Tables", subcategory="MVI (CMD-Net)",
                       caption="../report/mvi_summary.rst"),
        delong=report("results/mvi/delong_pairwise.html", category="Statistical tests",
                      caption="../report/mvi_delong.rst"),
        missingness=report("results/clinical/missingness.html", category="Data",
                           caption="../report/missingness.rst"),
    params:
        titles={"summary": "Every MVI method and teacher: metrics over folds and the pooled AUC with its CI",
                "delong": "DeLong's test of the reference method against each method, per class pair",
                "missingness": "Missing and out-of-range values per clinical item"},
    log:
        "results/logs/tables_html.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/tables_html.py"


rule describe_run:
    """The run's facts for the report: cohort kind, patients per class, scale, commit, config digest."""
    input:
        labels="results/cohort/labels.parquet",
        results=lambda wildcards: [*mvi_tables(), *grade_tables(), FINAL_BUNDLE],  # rerun with any result
    output:
        report("results/run_description.html", category="About this run", caption="../report/run_description.rst"),
    params:
        config_digest=config_digest(config),  # any configuration change rewrites the description
    log:
        "results/logs/describe_run.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/describe_run.py"

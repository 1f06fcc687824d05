# Statistics, tables and figures of both papers (gathered by `snakemake --report results/report.html`).

MVI_FIGURES = ["roc_pairwise", "confusion_matrix", "calibration"] + [
    f"training_curves_{name}" for name in MVI_METHODS + MVI_TEACHERS]


rule evaluate_mvi:
    input:
        methods=expand("results/mvi/methods/{method}/oof_predictions.parquet", method=MVI_METHODS),
        teachers=expand("results/mvi/teachers/{teacher}/oof_predictions.parquet", teacher=MVI_TEACHERS),
        histories=expand("results/mvi/{kind}/fold0/history.csv",
                         kind=[f"methods/{m}" for m in MVI_METHODS] + [f"teachers/{t}" for t in MVI_TEACHERS]),
    output:
        tables=report(mvi_tables(), category="Tables", subcategory="MVI (CMD-Net)",
                      caption="../report/mvi_tables.rst"),
        summary=report("results/mvi/summary.csv", category="Tables", subcategory="MVI (CMD-Net)",
                       caption="../report/mvi_summary.rst"),
        per_fold="results/mvi/metrics_per_fold.csv",
        delong=report("results/mvi/delong_pairwise.csv", category="Statistics",
                      caption="../report/mvi_delong.rst"),
        figures=report(expand("results/figures/mvi/{figure}.png", figure=MVI_FIGURES), category="Figures",
                       subcategory="MVI (CMD-Net)", caption="../report/mvi_figures.rst"),
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
        diagnostics=expand("results/grade/repeat{repeat}/fold{fold}/diagnostics.json",
                           repeat=GRADE_REPEATS, fold=GRADE_FOLDS),
        manifest="results/datasets/grade_manifest.parquet",
        labels="results/cohort/labels.parquet",
    output:
        tables=report(grade_tables(), category="Tables", subcategory="Grade (local/non-local fusion)",
                      caption="../report/grade_tables.rst"),
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

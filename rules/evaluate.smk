# Statistics, tables and figures of both papers (gathered by `snakemake --report results/report.html`).

MVI_FIGURES = ["roc_pairwise", "confusion_matrix", "calibration"] + [
    f"training_curves_{name}" for name in MVI_METHODS + MVI_TEACHERS]


rule evaluate_mvi:
    input:
        methods=mvi_predictions("methods", MVI_METHODS),
        teachers=mvi_predictions("teachers", MVI_TEACHERS),
        validation=mvi_predictions("methods", MVI_METHODS, "validation_predictions")
        + mvi_predictions("teachers", MVI_TEACHERS, "validation_predictions"),
        histories=[f"results/mvi/methods/{m}/repeat0/fold0/history.csv" for m in MVI_METHODS]
        + [f"results/mvi/teachers/{t}/repeat0/fold0/history.csv" for t in MVI_TEACHERS],
    output:
        **{key: report(files, category="Tables", subcategory="MVI (CMD-Net)", caption="../report/mvi_tables.rst")
           for key, files in mvi_table_outputs().items()},
        summary=report("results/mvi/summary.csv", category="Tables", subcategory="MVI (CMD-Net)",
                       caption="../report/mvi_summary.rst"),
        per_fold="results/mvi/metrics_per_fold.csv",
        delong=report("results/mvi/delong_pairwise.csv", category="Statistics",
                      caption="../report/mvi_delong.rst"),
        figures=report(expand("results/figures/mvi/{figure}.png", figure=MVI_FIGURES), category="Figures",
                       subcategory="MVI (CMD-Net)", caption="../report/mvi_figures.rst"),
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
        spectra="results/grade/repeat0/fold0/cifa_spectra.json",
    output:
        **{key: report(files, category="Tables", subcategory="Grade (local/non-local fusion)",
                       caption="../report/grade_tables.rst") for key, files in grade_table_outputs().items()},
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

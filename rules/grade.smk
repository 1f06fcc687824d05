# The grading experiment (local/non-local paper): one job per repeat and fold trains every patch model.


rule train_grade_fold:
    input:
        dataset="results/datasets/grade.npz",
        labels="results/cohort/labels.parquet",
        folds="results/folds/grade.parquet",
    output:
        predictions="results/grade/repeat{repeat}/fold{fold}/predictions.parquet",
        diagnostics="results/grade/repeat{repeat}/fold{fold}/diagnostics.json",
    params:
        grade=config["grade"],
        seed=config["seed"],
        repeat=lambda wildcards: int(wildcards.repeat),
        fold=lambda wildcards: int(wildcards.fold),
        checkpoint="results/checkpoints/grade/repeat{repeat}/fold{fold}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=TRAIN_MEM,
    log:
        "results/logs/train_grade_fold/repeat{repeat}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train_grade_fold/repeat{repeat}_fold{fold}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_grade_fold.py"

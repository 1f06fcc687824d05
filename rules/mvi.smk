# The MVI experiment (CMD-Net paper): per-fold teachers, per-fold methods, out-of-fold predictions.
# Training rules declare `gpu=1`: `snakemake --resources gpu=2` runs two at once, each on its own GPU.

MVI_DATA = {
    "dataset": "results/datasets/mvi.npz",
    "labels": "results/cohort/labels.parquet",
    "folds": "results/folds/mvi.parquet",
}


rule train_teacher:
    input:
        unpack(clinical_of),
        **MVI_DATA,
    output:
        model="results/mvi/teachers/{teacher}/fold{fold}/model.pt",
        history="results/mvi/teachers/{teacher}/fold{fold}/history.csv",
    params:
        dictionary=CLINICAL_DICTIONARY,
        training=lambda wildcards: mvi_training_params(wildcards.teacher),
        checkpoint="results/checkpoints/mvi/teachers/{teacher}/fold{fold}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=TRAIN_MEM,
    log:
        "results/logs/train_teacher/{teacher}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train_teacher/{teacher}_fold{fold}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_teacher.py"


rule train_student:
    input:
        unpack(clinical_of),
        **MVI_DATA,
        teacher=teacher_of,
    output:
        model="results/mvi/methods/{method}/fold{fold}/model.pt",
        history="results/mvi/methods/{method}/fold{fold}/history.csv",
    params:
        dictionary=CLINICAL_DICTIONARY,
        training=lambda wildcards: mvi_training_params(wildcards.method),
        teacher_model=lambda wildcards: (teacher_of(wildcards) or [None])[0],
        checkpoint="results/checkpoints/mvi/methods/{method}/fold{fold}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=TRAIN_MEM,
    log:
        "results/logs/train_student/{method}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train_student/{method}_fold{fold}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_student.py"


rule predict_mvi:
    input:
        unpack(clinical_of),
        **MVI_DATA,
        models=expand("results/mvi/{{kind}}/{{name}}/fold{fold}/model.pt", fold=MVI_FOLDS),
    output:
        "results/mvi/{kind}/{name}/oof_predictions.parquet",
    wildcard_constraints:
        kind="teachers|methods",
    params:
        dictionary=CLINICAL_DICTIONARY,
        folds=MVI_FOLDS,
        phases=MVI_PHASES,
    log:
        "results/logs/predict_mvi/{kind}_{name}.log",
    benchmark:
        "results/benchmarks/predict_mvi/{kind}_{name}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/predict_mvi.py"

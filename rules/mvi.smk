# The MVI experiment (CMD-Net paper): per-fold teachers and methods on every repeated partition, out-of-fold
# predictions. Training rules declare `gpu=1`: `snakemake --resources gpu=2` runs two at once, each on its own GPU.

MVI_DATA = {
    "dataset": "results/datasets/mvi.npz",
    "labels": "results/cohort/labels.parquet",
    "folds": "results/folds/mvi.parquet",
    "inner": "results/folds/mvi_inner.parquet",
}


rule train_teacher:
    input:
        **MVI_DATA,
        clinical="results/clinical/clinical_clean.parquet",
        dictionary=CLINICAL_DICTIONARY,
    output:
        model="results/mvi/teachers/{teacher}/repeat{repeat}/fold{fold}/model.pt",
        history="results/mvi/teachers/{teacher}/repeat{repeat}/fold{fold}/history.csv",
    params:
        teacher="{teacher}",
        repeat=lambda wildcards: int(wildcards.repeat),
        fold=lambda wildcards: int(wildcards.fold),
        settings=lambda wildcards: mvi_training_params(wildcards.teacher),
        checkpoint="results/checkpoints/mvi/teachers/{teacher}/repeat{repeat}_fold{fold}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=TRAIN_MEM,
    log:
        "results/logs/train_teacher/{teacher}_repeat{repeat}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train_teacher/{teacher}_repeat{repeat}_fold{fold}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_teacher.py"


rule train_method:
    input:
        pretrained_weights,
        unpack(method_inputs),
        **MVI_DATA,
    output:
        model="results/mvi/methods/{method}/repeat{repeat}/fold{fold}/model.pt",
        history="results/mvi/methods/{method}/repeat{repeat}/fold{fold}/history.csv",
    params:
        method="{method}",
        repeat=lambda wildcards: int(wildcards.repeat),
        fold=lambda wildcards: int(wildcards.fold),
        settings=lambda wildcards: mvi_training_params(wildcards.method),
        checkpoint="results/checkpoints/mvi/methods/{method}/repeat{repeat}_fold{fold}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=TRAIN_MEM,
    log:
        "results/logs/train_method/{method}_repeat{repeat}_fold{fold}.log",
    benchmark:
        "results/benchmarks/train_method/{method}_repeat{repeat}_fold{fold}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_method.py"


rule predict_mvi:
    input:
        unpack(lambda wildcards: clinical_inputs(wildcards.name) if wildcards.kind == "teachers" else {}),
        **MVI_DATA,
        models=expand("results/mvi/{{kind}}/{{name}}/repeat{repeat}/fold{fold}/model.pt", repeat=MVI_REPEATS,
                      fold=MVI_FOLDS),
    output:
        predictions="results/mvi/{kind}/{name}/oof_predictions.parquet",
        validation="results/mvi/{kind}/{name}/validation_predictions.parquet",
    wildcard_constraints:
        kind="teachers|methods",
    params:
        phases=MVI_PHASES,
        device="cpu",  # inference of the fold models is cheap; the CPU keeps it off the training GPUs
    log:
        "results/logs/predict_mvi/{kind}_{name}.log",
    benchmark:
        "results/benchmarks/predict_mvi/{kind}_{name}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/predict_mvi.py"


# The clinical-only reference rows (clinical_lr): one fast job fits every repeat's folds (scikit-learn, no GPU).
CLINICAL_REFERENCES = [m for m in MVI_METHODS if METHODS[m].clinical_only]

ruleorder: clinical_reference > predict_mvi


rule clinical_reference:
    input:
        **MVI_DATA,
        clinical="results/clinical/clinical_clean.parquet",
        dictionary=CLINICAL_DICTIONARY,
    output:
        predictions="results/mvi/methods/{name}/oof_predictions.parquet",
        validation="results/mvi/methods/{name}/validation_predictions.parquet",
    wildcard_constraints:
        name="|".join(CLINICAL_REFERENCES) or "no_clinical_reference",
    params:
        phases=MVI_PHASES,
        c=config["mvi"]["clinical_lr"]["c"],
        seed=config["seed"],
    log:
        "results/logs/clinical_reference/{name}.log",
    benchmark:
        "results/benchmarks/clinical_reference/{name}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/clinical_reference.py"

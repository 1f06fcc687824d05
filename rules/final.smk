# The clinical product: a model bundle of one MVI method for `cmdnet predict` (docs/predict.md).
# Strategy fold_ensemble: the bundle holds the method's K fold models; a prediction is the mean of their
# softmax probabilities. Nothing is trained here, so the rule needs no GPU.

FINAL = {"strategy": "fold_ensemble", **config.get("final", {})}
FINAL["method"] = FINAL.get("method") or config["mvi"]["reference_method"]
if FINAL["method"] not in MVI_METHODS:
    raise WorkflowError(f"config final.method {FINAL['method']!r} is not one of mvi.methods {MVI_METHODS}")
if FINAL["strategy"] != "fold_ensemble":
    raise WorkflowError(f"config final.strategy {FINAL['strategy']!r}: only 'fold_ensemble' is implemented")
FINAL_BUNDLE = f"results/models/{FINAL['method']}"


rule train_final:
    input:
        models=expand("results/mvi/methods/{method}/fold{fold}/model.pt", method=FINAL["method"], fold=MVI_FOLDS),
        labels="results/cohort/labels.parquet",
    output:
        directory(FINAL_BUNDLE),
    params:
        method=FINAL["method"],
        strategy=FINAL["strategy"],
        synthetic=SYNTHETIC,
        roi=config["roi"],
        training=mvi_training_params(FINAL["method"]),
    log:
        "results/logs/train_final.log",
    benchmark:
        "results/benchmarks/train_final.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train_final.py"

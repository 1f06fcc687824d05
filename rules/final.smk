# The clinical product: a model bundle of one MVI method for `cmdnet predict` (docs/predict.md).
# Strategy fold_ensemble: the bundle holds the method's K fold models of the first partition; a prediction is the
# mean of their softmax probabilities. Nothing is trained here, so the rule needs no GPU.

FINAL = {"strategy": "fold_ensemble", **config.get("final", {})}
FINAL["method"] = FINAL.get("method") or config["mvi"]["reference_method"]
if FINAL["method"] not in MVI_NETWORKS:
    raise WorkflowError(f"config final.method {FINAL['method']!r} is not one of the MRI methods of mvi.methods "
                        f"{MVI_NETWORKS}")
if FINAL["strategy"] != "fold_ensemble":
    raise WorkflowError(f"config final.strategy {FINAL['strategy']!r}: only 'fold_ensemble' is implemented")
FINAL_BUNDLE = f"results/models/{FINAL['method']}"


rule bundle_final:
    input:
        models=[fold_model("methods", FINAL["method"], 0, fold) for fold in MVI_FOLDS],
        labels="results/cohort/labels.parquet",
    output:
        bundle=directory(FINAL_BUNDLE),
    params:
        method=FINAL["method"],
        strategy=FINAL["strategy"],
        synthetic=SYNTHETIC,
        roi=config["roi"],
        settings=mvi_training_params(FINAL["method"]),
    log:
        "results/logs/bundle_final.log",
    benchmark:
        "results/benchmarks/bundle_final.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/bundle_final.py"

from cmdnet.logs import tee_output
from cmdnet.device import claim_gpu

tee_output(snakemake.log[0])
print(claim_gpu().describe())  # before torch touches CUDA

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from cmdnet.mvi.training.fold import load_mvi_data, train_method_fold  # noqa: E402

torch.set_num_threads(snakemake.threads)
p = snakemake.params.training
teacher = snakemake.params.teacher_model
data = load_mvi_data(snakemake.input.dataset, snakemake.input.labels, p["phases"],
                     clinical_path=snakemake.input.clinical if teacher else None,
                     dictionary_path=snakemake.params.dictionary if teacher else None)
summary = train_method_fold(
    data, pd.read_parquet(snakemake.input.folds), int(snakemake.wildcards.fold), snakemake.wildcards.method,
    p["model"], p["training"], p.get("distillation", {}), seed=p["seed"], inner_fraction=p["inner_fraction"],
    out_model=snakemake.output.model, out_history=snakemake.output.history, teacher_path=teacher,
    checkpoint_path=snakemake.params.checkpoint)
print(summary)

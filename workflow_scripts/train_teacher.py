from cmdnet.logs import tee_output
from cmdnet.device import claim_gpu

tee_output(snakemake.log[0])
print(claim_gpu().describe())  # before torch touches CUDA

import torch  # noqa: E402

from cmdnet.mvi.training.fold import load_mvi_data, train_teacher_fold  # noqa: E402
import pandas as pd  # noqa: E402

torch.set_num_threads(snakemake.threads)
p = snakemake.params.training
data = load_mvi_data(snakemake.input.dataset, snakemake.input.labels, p["phases"],
                     clinical_path=snakemake.input.clinical, dictionary_path=snakemake.params.dictionary)
summary = train_teacher_fold(
    data, pd.read_parquet(snakemake.input.folds), int(snakemake.wildcards.fold), snakemake.wildcards.teacher,
    p["model"], p["training"], seed=p["seed"], inner_fraction=p["inner_fraction"],
    out_model=snakemake.output.model, out_history=snakemake.output.history,
    checkpoint_path=snakemake.params.checkpoint)
print(summary)

from cmdnet.logs import tee_output
from cmdnet.training.gpu_slots import claim_gpu

tee_output(snakemake.log[0])
print(claim_gpu().describe())  # before torch touches CUDA

import torch  # noqa: E402

from cmdnet.pipeline import grade_fold_stage  # noqa: E402

torch.set_num_threads(snakemake.threads)
w = snakemake.wildcards
grade_fold_stage(snakemake.input.dataset, snakemake.input.labels, snakemake.input.folds, snakemake.params.grade,
                 snakemake.params.seed, int(w.repeat), int(w.fold), snakemake.output.predictions,
                 snakemake.output.diagnostics, checkpoint=snakemake.params.checkpoint)

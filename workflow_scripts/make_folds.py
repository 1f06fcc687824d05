from cmdnet.logs import tee_output
from cmdnet.stages import folds_stage

tee_output(snakemake.log[0])
folds_stage(snakemake.input.labels, snakemake.params.folds, snakemake.params.seed,
            snakemake.output.mvi, snakemake.output.grade)

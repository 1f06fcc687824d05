from cmdnet.stages import evaluate_mvi, run_job

run_job(evaluate_mvi, snakemake)

from cmdnet.stages import make_folds, run_job

run_job(make_folds, snakemake)

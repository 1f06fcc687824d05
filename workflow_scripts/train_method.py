from cmdnet.stages import train_method, run_job

run_job(train_method, snakemake)

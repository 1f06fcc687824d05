from cmdnet.stages import describe_run, run_job

run_job(describe_run, snakemake)

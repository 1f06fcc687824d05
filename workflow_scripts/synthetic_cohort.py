from cmdnet.stages import synthetic_cohort, run_job

run_job(synthetic_cohort, snakemake)

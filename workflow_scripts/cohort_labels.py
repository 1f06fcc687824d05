from cmdnet.stages import cohort_labels, run_job

run_job(cohort_labels, snakemake)

from cmdnet.stages import clean_clinical, run_job

run_job(clean_clinical, snakemake)

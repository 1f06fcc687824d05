from cmdnet.stages import extract_roi, run_job

run_job(extract_roi, snakemake)

from cmdnet.stages import bundle_final, run_job

run_job(bundle_final, snakemake)

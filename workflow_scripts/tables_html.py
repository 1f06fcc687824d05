from cmdnet.stages import tables_html, run_job

run_job(tables_html, snakemake)

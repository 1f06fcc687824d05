from cmdnet.stages import evaluate_grade, run_job

run_job(evaluate_grade, snakemake)

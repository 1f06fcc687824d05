from cmdnet.stages import predict_mvi, run_job

run_job(predict_mvi, snakemake)

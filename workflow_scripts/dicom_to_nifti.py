from cmdnet.stages import dicom_to_nifti, run_job

run_job(dicom_to_nifti, snakemake)

# Images: DICOM series -> canonical NIfTI -> tumour crops and patches (one job per patient) -> datasets.


rule dicom_to_nifti:
    # One job converts all phases of a patient: a job costs about a second of process start and imports,
    # more than converting one small series, so per-phase jobs would spend most of the run starting up.
    input:
        patient_dicom_dirs,
    output:
        images=expand("results/nifti/{{patient}}/{phase}.nii.gz", phase=ALL_PHASES),
        sidecars=expand("results/nifti/{{patient}}/{phase}.json", phase=ALL_PHASES),
    params:
        patient="{patient}",
        series=lambda wildcards: {ph: {k: v for k, v in s.items() if k != "mask"}
                                  for ph, s in patient_series(wildcards).items()},
        files_digest=patient_files_digest,
        phases=ALL_PHASES,
    log:
        "results/logs/dicom_to_nifti/{patient}.log",
    benchmark:
        "results/benchmarks/dicom_to_nifti/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/dicom_to_nifti.py"


rule extract_roi:
    input:
        patient_mask_files,
        images=expand("results/nifti/{{patient}}/{phase}.nii.gz", phase=ALL_PHASES),
    output:
        rois=expand("results/roi/{{patient}}/{phase}.npz", phase=ALL_PHASES),
    params:
        patient="{patient}",
        series=patient_series,
        masks={k: config["cohort"][k] for k in ("mask_label", "mask_components")},
        roi=config["roi"],
        phases=ALL_PHASES,
        patch_phase=GRADE_PHASE,
        seed=config["seed"],
    log:
        "results/logs/extract_roi/{patient}.log",
    benchmark:
        "results/benchmarks/extract_roi/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/extract_roi.py"


rule assemble_mvi_dataset:
    input:
        rois=expand("results/roi/{patient}/{phase}.npz", patient=PATIENTS, phase=MVI_PHASES),
    output:
        dataset="results/datasets/mvi.npz",
        manifest="results/datasets/mvi_manifest.parquet",
    params:
        patients=PATIENTS,
        phases=MVI_PHASES,
        patches_of=None,
    log:
        "results/logs/assemble_mvi_dataset.log",
    benchmark:
        "results/benchmarks/assemble_mvi_dataset.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/assemble_dataset.py"


rule assemble_grade_dataset:
    input:
        rois=expand("results/roi/{patient}/{phase}.npz", patient=PATIENTS, phase=[GRADE_PHASE]),
    output:
        dataset="results/datasets/grade.npz",
        manifest="results/datasets/grade_manifest.parquet",
    params:
        patients=PATIENTS,
        phases=[GRADE_PHASE],
        patches_of=GRADE_PHASE,
    log:
        "results/logs/assemble_grade_dataset.log",
    benchmark:
        "results/benchmarks/assemble_grade_dataset.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/assemble_dataset.py"

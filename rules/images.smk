# Images: DICOM series -> canonical NIfTI (per patient and phase) -> tumour crops and patches -> datasets.


rule dicom_to_nifti:
    input:
        COHORT_INPUT,
    output:
        image="results/nifti/{patient}/{phase}.nii.gz",
        sidecar="results/nifti/{patient}/{phase}.json",
    params:
        sheet=COHORT_SHEET,
        cohort=config["cohort"],
    log:
        "results/logs/dicom_to_nifti/{patient}_{phase}.log",
    benchmark:
        "results/benchmarks/dicom_to_nifti/{patient}_{phase}.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/dicom_to_nifti.py"


rule extract_roi:
    input:
        COHORT_INPUT,
        image="results/nifti/{patient}/{phase}.nii.gz",
    output:
        "results/roi/{patient}/{phase}.npz",
    params:
        sheet=COHORT_SHEET,
        cohort=config["cohort"],
        roi=config["roi"],
        make_patches=lambda wildcards: wildcards.phase == GRADE_PHASE,
        seed=config["seed"],
    log:
        "results/logs/extract_roi/{patient}_{phase}.log",
    benchmark:
        "results/benchmarks/extract_roi/{patient}_{phase}.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/extract_roi.py"


rule assemble_mvi_dataset:
    input:
        expand("results/roi/{patient}/{phase}.npz", patient=PATIENTS, phase=MVI_PHASES),
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
        expand("results/roi/{patient}/{phase}.npz", patient=PATIENTS, phase=[GRADE_PHASE]),
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

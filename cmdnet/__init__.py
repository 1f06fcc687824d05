"""cmdnet: from a liver-MRI cohort (DICOM + clinical sheet) to the models, statistics and tables of two
HCC papers (CMD-Net MVI distillation; local/non-local deep feature fusion for grading).

The library knows nothing of Snakemake; the workflow (Snakefile, rules/) calls it through
workflow_scripts/, and the `cmdnet` command line calls it directly.
"""

__version__ = "0.1.0"

"""The cohort as data: sheets, DICOM conversion, masks and tumour crops, the clinical table, folds, and the
built-in synthetic cohort. Nothing here knows about a model."""

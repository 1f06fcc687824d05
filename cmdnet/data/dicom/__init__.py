"""Stage 1: one DICOM series -> one canonical 3D volume (LPS, float32) + a JSON sidecar without identifiers.

The headers are read once with pydicom (`stop_before_pixels`, `headers`) and checked before any pixel is
trusted (`geometry`): the series is chosen explicitly, its images are sorted along the slice normal, and
the stack is refused unless it is one volume with uniform slice spacing. Only then does SimpleITK read
the pixels from the sorted file list (no second GDCM scan of the directory), and the geometry is set
from the validated header values (`convert`).

Anything that cannot become one correct 3D volume raises `DicomError` with a one-line reason naming the
patient, phase and directory; nothing is written in that case.
"""

from cmdnet.data.dicom.convert import SIDECAR_ATTRIBUTES, convert_series, read_series, sidecar_path, series_grid
from cmdnet.data.dicom.headers import SeriesInfo, list_series, uid_digest

__all__ = ["SIDECAR_ATTRIBUTES", "SeriesInfo", "convert_series", "list_series", "read_series", "series_grid",
           "sidecar_path", "uid_digest"]

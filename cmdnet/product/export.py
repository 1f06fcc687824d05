"""Export of a bundle (or one network) to TorchScript, for use without cmdnet's Python code.

The exported module maps `images` float32 `(B, P, Z, Y, X)` (the crops, phases in the bundle's order) to
probabilities `(B, C)`: for a bundle the mean of its members' softmax probabilities, exactly as
`Bundle.predict_proba`. It is made with `torch.jit.trace` (ONNX would need the `onnx` package, which cmdnet
does not depend on). Preprocessing (DICOM conversion, crop) is not part of it: the bundle's `bundle.json` is
stored inside the file as the extra file `bundle.json`, so a user can reproduce it.
Load with `torch.jit.load(path)`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from cmdnet.atomic import atomic_path
from cmdnet.product.bundle import Bundle, load_bundle


class ProbabilityEnsemble(nn.Module):
    """`images (B, P, Z, Y, X) -> mean_k softmax(member_k(images).logits)`, shape `(B, C)`."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(m(images).logits.float(), dim=1) for m in self.members]
        return torch.stack(probs).mean(dim=0)


def export_student(source: str | Path | Bundle | nn.Module, out_path: str | Path, *,
                   in_shape_zyx: tuple[int, int, int] | None = None, n_phases: int | None = None) -> Path:
    """Trace `source` (a bundle directory, a loaded Bundle, or one network) and save TorchScript to `out_path`.

    For a bare network give `in_shape_zyx` and `n_phases` (a bundle knows them). Returns `out_path`.
    """
    meta = None
    if isinstance(source, (str, Path)):
        source = load_bundle(source)
    if isinstance(source, Bundle):
        meta = source.meta
        members = source.members
        in_shape_zyx = tuple(meta["preprocessing"]["crop_shape_zyx"])
        n_phases = len(source.phases)
    else:
        if in_shape_zyx is None or n_phases is None:
            raise ValueError("exporting a bare network needs in_shape_zyx and n_phases")
        members = [source]
    module = ProbabilityEnsemble(members).eval()
    example = torch.zeros((1, n_phases, *in_shape_zyx), dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        # The models' input checks compare shapes in Python; traced, they are constants for this shape,
        # which is what a fixed-shape export wants (the batch size stays free).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch >= 2.10 marks TorchScript deprecated in favour of torch.export; TorchScript is kept because
        # it runs from C++ (libtorch) without Python. See docs/predict.md.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, example, check_inputs=[(example.repeat(2, 1, 1, 1, 1),)])
    out_path = Path(out_path)
    extra = {"bundle.json": json.dumps(meta or {}, indent=2)}
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    return out_path

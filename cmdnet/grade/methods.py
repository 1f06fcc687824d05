"""The registry of grading methods: what each model is and which table rows it gives, written once.

An entry says which branches the model uses, how the non-local map reaches the fusion stage, which head
classifies, which auxiliary objective it trains with (and how), and under which display name it appears in
which table. The network builder, the training loop, the evaluation and the workflow's list of outputs all
read this registry; adding a grading method is its module (a new head or branch, if any) plus one entry here.

Tables (`GRADE_TABLES`): the paper's Table 1 (local vs non-local vs fusion) and Table 2 (fusion methods), and
a third table of controls that cmdnet adds (not in the paper) to isolate what the non-local readout and the
CIFA auxiliary loss contribute. Rows of a table follow the registry's order within each dim, 2D first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: the paper's proposed model: Table 1's fusion row and Table 2's last row; Tables 1-2 test against it
REFERENCE = "cifa"
DIM_NAMES = {"2d": "2D", "3d": "3D"}
HEADS = ("single", "concat", "dcca", "cifa")
READOUTS = ("flatten", "pooled")
PROTOCOLS = ("joint", "dcca_pretrain")


@dataclass(frozen=True)
class GradeMethod:
    """One grading model.

    local / nonlocal_: which branches feed the head. nonlocal_readout: "flatten" (the non-local map, all
    positions, flattened and linearly projected: position-wise information reaches the head) or "pooled"
    (global average pooling right after the block; see docs/grading.md). head: "single" (one feature set ->
    FC), "concat" ([Y1, Y2] -> FC), "dcca" (projections H_i, FC on [H1, H2]), "cifa" (Eqs. 3-6, components
    `cifa_mode` -> FC). aux: the objective added to the cross-entropy (None, "cifa", "dcca"); aux_weight
    overrides the configured weight when not None. protocol: "joint" (CE + weight * aux from the first step)
    or "dcca_pretrain" (Yao et al. 2017: correlation pre-training, then fine-tuning with the CE alone).
    rows: (table, label) pairs; the display name is "<2D|3D> <label>". counterpart: for a control, the
    method it is tested against.
    """

    name: str
    summary: str
    local: bool
    nonlocal_: bool
    head: str
    rows: tuple[tuple[str, str], ...]
    nonlocal_readout: str = "flatten"
    cifa_mode: str = "both"
    aux: str | None = None
    aux_weight: float | None = None
    protocol: str = "joint"
    counterpart: str | None = None

    def __post_init__(self) -> None:
        if self.head not in HEADS or self.nonlocal_readout not in READOUTS or self.protocol not in PROTOCOLS:
            raise ValueError(f"grading method {self.name!r}: head {self.head!r}, readout {self.nonlocal_readout!r} "
                             f"or protocol {self.protocol!r} unknown")
        if self.aux not in (None, "cifa", "dcca"):
            raise ValueError(f"grading method {self.name!r}: aux must be None, 'cifa' or 'dcca', got {self.aux!r}")
        if (self.head == "single") != (self.local != self.nonlocal_):
            raise ValueError(f"grading method {self.name!r}: a single head takes exactly one branch")

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(table for table, _ in self.rows)

    def display(self, table: str, dim: str) -> str:
        """The row name in `table`, e.g. display("table1", "3d") -> "3D local and non-local fusion"."""
        labels = dict(self.rows)
        if table not in labels:
            raise KeyError(f"grading method {self.name!r} gives no row to {table!r}")
        return f"{DIM_NAMES[dim]} {labels[table]}"

    def effective_aux_weight(self, configured: float) -> float:
        """The weight of the auxiliary objective in this method's loss (0 without one)."""
        if self.aux is None or self.protocol == "dcca_pretrain":  # DCCA fine-tunes with the CE alone
            return 0.0
        return configured if self.aux_weight is None else self.aux_weight


@dataclass(frozen=True)
class GradeTable:
    """One output table: file stem under results/tables, title, and what its p-values compare."""

    key: str
    stem: str
    title: str
    compare: str   # "reference": every row against REFERENCE of the same dim; "counterpart": against its own


T1, T2, CONTROLS = "table1", "table2", "controls"

GRADE_METHODS: dict[str, GradeMethod] = {m.name: m for m in [
    GradeMethod("local", "Y1 -> FC", True, False, "single", ((T1, "local"),)),
    GradeMethod("nonlocal", "Y2 (non-local map, flattened + projected) -> FC", False, True, "single",
                ((T1, "non-local"),)),
    GradeMethod("concat", "[Y1, Y2] -> FC", True, True, "concat", ((T2, "direct concatenation"),)),
    GradeMethod("dcca", "H_i = P_i Y_i pre-trained by DCCA, then [H1, H2] -> FC fine-tuned by CE", True, True,
                "dcca", ((T2, "deep correlation model"),), aux="dcca", protocol="dcca_pretrain"),
    GradeMethod("common", "[J1] -> FC, CIFA objective", True, True, "cifa", ((T2, "common feature"),),
                cifa_mode="common", aux="cifa"),
    GradeMethod("individual", "[A1, A2] -> FC, CIFA objective", True, True, "cifa",
                ((T2, "individual feature"),), cifa_mode="individual", aux="cifa"),
    GradeMethod("cifa", "[J1, A1, A2] -> FC, CIFA objective (the proposed model)", True, True, "cifa",
                ((T1, "local and non-local fusion"), (T2, "common and individual feature analysis")),
                aux="cifa"),
    # Controls (cmdnet's additions, not in the paper): each isolates one ingredient of its counterpart.
    GradeMethod("nonlocal_pooled", "GAP(non-local map) -> FC", False, True, "single",
                ((CONTROLS, "non-local, average-pooled map"),), nonlocal_readout="pooled", counterpart="nonlocal"),
    GradeMethod("cifa_pooled", "cifa with the average-pooled non-local map", True, True, "cifa",
                ((CONTROLS, "CIFA fusion, average-pooled non-local map"),), nonlocal_readout="pooled",
                aux="cifa", counterpart="cifa"),
    GradeMethod("concat_aux", "[Y1, Y2] -> FC, trained with the CIFA objective", True, True, "concat",
                ((CONTROLS, "direct concatenation + CIFA objective"),), aux="cifa", counterpart="concat"),
    GradeMethod("cifa_noaux", "[J1, A1, A2] -> FC, CIFA objective weight 0", True, True, "cifa",
                ((CONTROLS, "CIFA fusion, objective weight 0"),), aux="cifa", aux_weight=0.0,
                counterpart="cifa"),
]}

GRADE_TABLES: dict[str, GradeTable] = {t.key: t for t in [
    GradeTable(T1, "table1_grade", "Performance comparison of local, non-local and local and non-local fusion "
                                   "of deep features in 2D and 3D (arterial phase, %).", "reference"),
    GradeTable(T2, "table2_grade_fusion", "Performance comparison of local and non-local deep feature fusion in "
                                          "2D and 3D by direct concatenation, deep correlation model and common "
                                          "and individual feature analysis (%).", "reference"),
    GradeTable(CONTROLS, "table3_grade_controls", "Controls added by cmdnet (not in the paper): each row against "
                                                  "the method it isolates an ingredient of (%).", "counterpart"),
]}


def grade_method(name: str) -> GradeMethod:
    """The registry entry of `name`; an unknown name fails with the known ones listed."""
    if name not in GRADE_METHODS:
        raise ValueError(f"unknown grading method {name!r}; known: {', '.join(GRADE_METHODS)}")
    return GRADE_METHODS[name]


def table_rows(table: str, methods: Iterable[str], dims: Sequence[str]) -> list[tuple[str, str]]:
    """The (method, dim) rows of `table` among the configured methods, in table order (2D block first)."""
    configured = set(methods)
    return [(m.name, dim) for dim in sorted(dims) for m in GRADE_METHODS.values()
            if m.name in configured and table in m.tables]


def comparison_of(table: str, method: str) -> str | None:
    """The method a row of `table` is tested against (None for the reference row itself)."""
    other = REFERENCE if GRADE_TABLES[table].compare == "reference" else GRADE_METHODS[method].counterpart
    return None if other == method else other


def tables_given(methods: Iterable[str]) -> list[GradeTable]:
    """The tables that the configured methods give at least one row to, in table order."""
    methods = [grade_method(m) for m in methods]
    return [t for t in GRADE_TABLES.values() if any(t.key in m.tables for m in methods)]


def figures_given(methods: Iterable[str]) -> list[str]:
    """Figure names: ROC curves always; common/individual spectra when the proposed model is configured."""
    return ["roc_grade"] + (["cifa_spectra"] if REFERENCE in set(methods) else [])

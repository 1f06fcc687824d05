"""The registry of MVI methods: every row of the CMD-Net paper's Tables 1 and 2 is one entry here.

A method says which network to build (by name in `cmdnet.mvi.models.build_model`), which phases it sees, which
teacher it learns from (if any), which objective it is trained with (a named weighted sum of loss terms configured
under `mvi.objectives`), and where it appears in the tables. The workflow asks the registry which teachers and
methods to train, which jobs read the clinical table, and the tables follow it: adding a method is a network module,
an entry here, a name in `mvi.methods` and a test.

Teachers are registered the same way: a teacher sees images and the clinical vector and is trained alone with its
objective (`mvi.objectives.teacher`); distilled methods learn from the same fold's teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    display: str
    phases: tuple[str, ...]
    use_ca: bool = True
    objective: str = "teacher"
    model_options: Mapping = field(default_factory=dict)   # over mvi.model.teacher (e.g. the L_clinical head)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    display: str
    model: str                      # name for cmdnet.mvi.models.build_model
    phases: tuple[str, ...] = ("PRE", "HBP")
    use_ca: bool = True
    teacher: str | None = None      # TeacherSpec name; None = trained without distillation
    objective: str = "supervised"   # key of mvi.objectives
    tables: tuple[str, ...] = ()    # "table1", "table2"
    table2_role: str = "S"          # the T/S column of Table 2
    citation: str = ""
    inputs: str = "images"          # "images": an MRI-only method; "clinical": the clinical table alone

    @property
    def distilled(self) -> bool:
        return self.teacher is not None

    @property
    def clinical_only(self) -> bool:
        """A reference row that predicts from the clinical table, not from MRI (trained by its own rule)."""
        return self.inputs == "clinical"

    @property
    def reads_clinical(self) -> bool:
        """Its job reads the clinical table: to feed the teacher (distilled methods, never at prediction) or as
        its input (clinical-only references)."""
        return self.distilled or self.clinical_only


TEACHERS: dict[str, TeacherSpec] = {t.name: t for t in [
    TeacherSpec("teacher", "Teacher (PRE + HBP + clinical)", ("PRE", "HBP")),
    TeacherSpec("teacher_pre", "Teacher (PRE + clinical)", ("PRE",), use_ca=False),
    TeacherSpec("teacher_hbp", "Teacher (HBP + clinical)", ("HBP",), use_ca=False),
    TeacherSpec("teacher_noca", "Teacher w/o CA (PRE + HBP + clinical)", ("PRE", "HBP"), use_ca=False),
    TeacherSpec("teacher_lclin", "Teacher + L_clinical (PRE + HBP + clinical)", ("PRE", "HBP"),
                objective="teacher_clinical", model_options={"clinical_head": "reconstruct"}),
]}

_OURS = dict(model="student", teacher="teacher", objective="cmdnet")

METHODS: dict[str, MethodSpec] = {m.name: m for m in [
    MethodSpec("concat", "Concat", "concat", tables=("table1",), citation="Nie et al. 2019"),
    MethodSpec("cnn3d", "3DCNN", "cnn3d", tables=("table1",), citation="Jiang et al. 2021"),
    MethodSpec("lstm", "LSTM", "lstm", tables=("table1",), citation="Men et al. 2019"),
    MethodSpec("m2net", "M2Net", "m2net", objective="auxiliary_heads", tables=("table1",),
               citation="Zhou et al. 2020"),
    MethodSpec("concat2s", "Concat_2S", "concat2s", tables=("table1",), citation="Zhou et al. 2019"),
    MethodSpec("kd_ours", "KD_ours", "student", teacher="teacher", objective="hinton_kd", tables=("table1",),
               citation="Hinton, Vinyals, and Dean 2015"),
    MethodSpec("sp_ours", "SP_ours", "student", teacher="teacher", objective="similarity_preserving",
               tables=("table1",), citation="Tung and Mori 2019"),
    MethodSpec("ours", "Our method", tables=("table1", "table2"), table2_role="S→T", **_OURS),
    MethodSpec("s_pre", "S-pre", "student", phases=("PRE",), use_ca=False, tables=("table2",)),
    MethodSpec("s_hbp", "S-hbp", "student", phases=("HBP",), use_ca=False, tables=("table2",)),
    MethodSpec("s_pre_hbp", "S-pre-hbp", "student", tables=("table2",)),
    MethodSpec("ours_wo_hbp", "ours-w/o-hbp", phases=("PRE",), use_ca=False, tables=("table2",),
               table2_role="S→T", **{**_OURS, "teacher": "teacher_pre"}),
    MethodSpec("ours_wo_pre", "ours-w/o-pre", phases=("HBP",), use_ca=False, tables=("table2",),
               table2_role="S→T", **{**_OURS, "teacher": "teacher_hbp"}),
    MethodSpec("ours_wo_ca", "ours-w/o-CA", use_ca=False, tables=("table2",), table2_role="S→T",
               **{**_OURS, "teacher": "teacher_noca"}),
    # Not rows of the paper's tables:
    MethodSpec("ours_lclin", "ours + L_clinical", **{**_OURS, "teacher": "teacher_lclin"}),
    MethodSpec("clinical_lr", "Clinical-only LR", "clinical_lr", phases=(), inputs="clinical", tables=("table1",)),
]}


def method_spec(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown MVI method {name!r}; known: {', '.join(METHODS)}") from None


def teacher_spec(name: str) -> TeacherSpec:
    try:
        return TEACHERS[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}") from None


def spec(name: str) -> MethodSpec | TeacherSpec:
    """The method or teacher registered as `name`."""
    return TEACHERS[name] if name in TEACHERS else method_spec(name)


def teachers_needed(method_names: list[str]) -> list[str]:
    """The teachers the given methods distil from, in registry order."""
    wanted = {method_spec(m).teacher for m in method_names} - {None}
    return [t for t in TEACHERS if t in wanted]


def display_name(name: str, *, with_citation: bool = False) -> str:
    """The name a table or figure shows for a method or teacher."""
    entry = spec(name)
    citation = getattr(entry, "citation", "")
    return f"{entry.display} ({citation})" if with_citation and citation else entry.display


def phase_indices(phases: tuple[str, ...], available: tuple[str, ...]) -> list[int]:
    """Indices of `phases` in the dataset's phase axis (`available`)."""
    missing = [p for p in phases if p not in available]
    if missing:
        raise ValueError(f"phases {missing} are not in the dataset's phases {list(available)}")
    return [available.index(p) for p in phases]

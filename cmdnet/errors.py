"""Errors that reach a user: each names what was wrong and where (patient, phase, file)."""

from __future__ import annotations

from pathlib import Path


class CmdnetError(Exception):
    """Base class of all errors that are the input's fault, not the program's."""


class InputError(CmdnetError):
    """Bad input data. The message reads `patient P, phase X, FILE: problem` with the known parts only.

    Never put a DICOM identifier (PatientName, ...) or a clinical-sheet name into the message:
    use the cohort's `patient_id`.
    """

    def __init__(self, problem: str, *, patient: str | None = None, phase: str | None = None,
                 path: str | Path | None = None):
        self.problem = problem
        self.patient = patient
        self.phase = phase
        self.path = None if path is None else str(path)
        where = []
        if patient is not None:
            where.append(f"patient {patient}")
        if phase is not None:
            where.append(f"phase {phase}")
        if self.path is not None:
            where.append(self.path)
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)

    def located(self, *, patient: str | None = None, phase: str | None = None,
                path: str | Path | None = None) -> "InputError":
        """The same error with missing location parts filled in (keeps what is already known)."""
        return type(self)(self.problem, patient=self.patient or patient, phase=self.phase or phase,
                          path=self.path or path)


class DicomError(InputError):
    """A DICOM series that cannot be turned into one correct 3D volume."""


class CohortError(InputError):
    """A cohort sheet, clinical sheet or mask that does not fit the expected form."""


class CohortInvalid(CmdnetError):
    """Several input problems found at once (the cohort check): the message lists every one, one per line.

    `problems` holds the individual errors (`InputError`, each `patient P, phase X, FILE: problem`).
    """

    def __init__(self, problems: list[InputError], *, checked: str = ""):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in the cohort"
        head += f" ({checked})" if checked else ""
        super().__init__("\n".join([head + ":"] + [f"  {p}" for p in self.problems]))


class CohortWarning(UserWarning):
    """Input that is used, but not as it stands (e.g. the largest of several lesions in a mask); the message
    names the patient, phase and file like an `InputError`."""


class BundleError(CmdnetError):
    """A model bundle that cannot be used (wrong version, missing file)."""

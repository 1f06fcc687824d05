# Config validation, the patient list, and the input functions shared by the rules.
import sys

# The workflow imports cmdnet from its own directory; job scripts do so through workflow_scripts/cmdnet,
# a link to ../cmdnet (Snakemake puts a script's directory on sys.path), also inside conda envs.
sys.path.insert(0, workflow.basedir)

from snakemake.utils import min_version, validate

from cmdnet.grading.methods import figures_given as grade_figures_given, grade_method
from cmdnet.grading.methods import tables_given as grade_tables_given
from cmdnet.methods import METHODS, TEACHERS, teachers_needed, method as method_spec
from cmdnet.synth.params import patient_ids as synthetic_patient_ids

min_version("9.0")


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

SYNTHETIC = config["cohort"]["sheet"] is None
if SYNTHETIC:
    COHORT_DIR = "resources/synthetic_cohort"  # outside results/: its DICOM headers hold (fake) identifiers
    COHORT_SHEET = f"{COHORT_DIR}/cohort.csv"
    CLINICAL_SHEET = f"{COHORT_DIR}/clinical.csv"
    CLINICAL_DICTIONARY = f"{COHORT_DIR}/clinical_dictionary.csv"
    COHORT_INPUT = [COHORT_DIR]
    SHEET_INPUT = DICTIONARY_INPUT = [COHORT_DIR]
    PATIENTS = synthetic_patient_ids(config["synthetic"]["n_patients"])
else:
    from cmdnet.cohort import patient_ids_from_sheet

    COHORT_SHEET = config["cohort"]["sheet"]
    CLINICAL_SHEET = config["cohort"]["clinical_sheet"]
    CLINICAL_DICTIONARY = config["cohort"]["clinical_dictionary"]
    for key in ("clinical_sheet", "clinical_dictionary"):
        if not config["cohort"][key]:
            raise WorkflowError(f"config cohort.{key} is required when cohort.sheet is set")
    COHORT_INPUT = [COHORT_SHEET, CLINICAL_SHEET, CLINICAL_DICTIONARY]
    # Narrower inputs, so that correcting a clinical value does not redo the image stages or the image-only
    # models, and vice versa.
    SHEET_INPUT = [COHORT_SHEET]
    DICTIONARY_INPUT = [CLINICAL_DICTIONARY]
    PATIENTS = patient_ids_from_sheet(COHORT_SHEET, column=config["cohort"]["columns"]["patient_id"])

MVI_PHASES = list(config["mvi"]["phases"])
GRADE_PHASE = config["grade"]["phase"]
ALL_PHASES = list(dict.fromkeys(MVI_PHASES + [GRADE_PHASE]))
MVI_METHODS = list(config["mvi"]["methods"])
for _name in MVI_METHODS:
    method_spec(_name)  # unknown names fail here, with the known names listed
MVI_TEACHERS = teachers_needed(MVI_METHODS)
if config["mvi"]["reference_method"] not in MVI_METHODS:
    raise WorkflowError(f"config mvi.reference_method {config['mvi']['reference_method']!r} is not one of "
                        f"mvi.methods {MVI_METHODS}")
for _name, _override in (config["mvi"].get("overrides") or {}).items():
    if _name not in METHODS and _name not in TEACHERS:
        raise WorkflowError(f"config mvi.overrides: unknown method or teacher {_name!r}; known: "
                            f"{', '.join([*METHODS, *TEACHERS])}")
    for _section, _values in (_override or {}).items():
        if _section not in ("model", "training", "distillation"):
            raise WorkflowError(f"config mvi.overrides.{_name}: unknown key {_section!r}")
        for _key in sorted(set(_values or {}) - set(config["mvi"][_section])):
            raise WorkflowError(f"config mvi.overrides.{_name}: unknown key '{_section}.{_key}'")
for _name in config["grade"]["methods"]:
    grade_method(_name)  # unknown names fail here, with the known names listed
MVI_FOLDS = list(range(config["folds"]["mvi_k"]))
GRADE_REPEATS = list(range(config["folds"]["grade_repeats"]))
GRADE_FOLDS = list(range(config["folds"]["grade_k"]))
TRAIN_THREADS = config["resources"]["training_threads"]
TRAIN_MEM = config["resources"]["training_mem_mb"]


wildcard_constraints:
    patient="[A-Za-z0-9_.-]+",
    phase="|".join(ALL_PHASES),
    fold=r"\d+",
    repeat=r"\d+",
    method="|".join(METHODS),
    teacher="|".join(["teacher", "teacher_pre", "teacher_hbp", "teacher_noca"]),


def mvi_tables():
    """The MVI tables that the configured methods give rows to (Table 1 needs the reference method in it)."""
    reference = config["mvi"]["reference_method"]
    tables = []
    if "table1" in METHODS[reference].tables:
        tables.append("table1_mvi")
    if any("table2" in METHODS[m].tables for m in MVI_METHODS):
        tables.append("table2_mvi_ablation")
    return expand("results/tables/{table}.{ext}", table=tables, ext=["md", "csv", "tex"])


def grade_tables():
    """The grading tables that the configured grade.methods give rows to (cmdnet.grading.methods)."""
    stems = [table.stem for table in grade_tables_given(config["grade"]["methods"])]
    return expand("results/tables/{table}.{ext}", table=stems, ext=["md", "csv", "tex"])


def grade_figures():
    """ROC curves always; the common/individual spectra when CIFA is configured (cmdnet.grading.methods)."""
    return expand("results/figures/grade/{figure}.png", figure=grade_figures_given(config["grade"]["methods"]))


def teacher_of(wildcards):
    """The same fold's teacher model for a distilled method; nothing for the others."""
    name = method_spec(wildcards.method).teacher
    return [] if name is None else [f"results/mvi/teachers/{name}/fold{wildcards.fold}/model.pt"]


def clinical_of(wildcards):
    """The cleaned clinical table and its dictionary, for jobs whose model (or teacher) reads them."""
    reads_clinical = (wildcards.get("kind") == "teachers" or "teacher" in wildcards.keys()
                      or (wildcards.get("method") and method_spec(wildcards.method).teacher is not None))
    return {"clinical": "results/clinical/clinical_clean.parquet", "dictionary": DICTIONARY_INPUT} \
        if reads_clinical else {}


def _merged(base, override):
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = _merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def mvi_training_params(name):
    """The config one teacher's or method's jobs depend on, with its `mvi.overrides` entry merged in.

    Rules pass only this as `params`, so changing one method's settings reruns only that method's jobs
    (Snakemake reruns a job whose params changed).
    """
    distils = name in METHODS and method_spec(name).teacher is not None
    keys = ("model", "training", "distillation") if distils else ("model", "training")
    section = {key: config["mvi"][key] for key in keys}
    section = _merged(section, {k: v for k, v in (config["mvi"].get("overrides", {}).get(name) or {}).items()
                                if k in keys})
    return {**section, "seed": config["seed"], "inner_fraction": config["folds"]["inner_validation_fraction"],
            "phases": MVI_PHASES}

# Config validation, the patient list, and the input functions shared by the rules.
# Convention of the seam (cmdnet/stages.py): a rule's named inputs, `out_`-prefixed named outputs and params are the
# stage's keyword arguments; unnamed inputs are dependencies only.
import sys
import time

# The workflow imports cmdnet from its own directory; job scripts do so through workflow_scripts/cmdnet,
# a link to ../cmdnet (Snakemake puts a script's directory on sys.path), also inside conda envs.
sys.path.insert(0, workflow.basedir)

from snakemake.utils import min_version

from cmdnet.config import ConfigError, validate as validate_config
from cmdnet.data.cohort import cohort_sources
from cmdnet.data.synth.cohort import cohort_layout, synthetic_sources
from cmdnet.data.synth.params import patient_ids as synthetic_patient_ids
from cmdnet.data.validate import check_cohort_once
from cmdnet.errors import CmdnetError
from cmdnet.grade.methods import figures_given as grade_figures_given, grade_method
from cmdnet.grade.methods import tables_given as grade_tables_given
from cmdnet.mvi.methods import METHODS, TEACHERS, method_spec, spec as mvi_spec, teachers_needed
from cmdnet.mvi.objective import check_objectives
from cmdnet.mvi.settings import job_settings

min_version("9.0")
WORKFLOW_STARTED = time.time()

try:
    validate_config(config)
    check_objectives(config["mvi"]["objectives"])
except ConfigError as err:
    raise WorkflowError(str(err)) from None

MVI_PHASES = list(config["mvi"]["phases"])
GRADE_PHASE = config["grade"]["phase"]
ALL_PHASES = list(dict.fromkeys(MVI_PHASES + [GRADE_PHASE]))
SYNTHETIC = config["cohort"]["sheet"] is None
if SYNTHETIC:
    COHORT_DIR = "resources/synthetic_cohort"  # outside results/: its DICOM headers hold (fake) identifiers
    LAYOUT = {key: str(path) for key, path in cohort_layout(COHORT_DIR).items()}
    COHORT_SHEET, CLINICAL_SHEET, CLINICAL_DICTIONARY = LAYOUT["sheet"], LAYOUT["clinical_sheet"], LAYOUT["dictionary"]
    PATIENTS = synthetic_patient_ids(config["synthetic"]["n_patients"])
    SOURCES = synthetic_sources(COHORT_DIR, PATIENTS, ALL_PHASES)
else:
    COHORT_SHEET = config["cohort"]["sheet"]
    CLINICAL_SHEET = config["cohort"]["clinical_sheet"]
    CLINICAL_DICTIONARY = config["cohort"]["clinical_dictionary"]
    for key in ("clinical_sheet", "clinical_dictionary"):
        if not config["cohort"][key]:
            raise WorkflowError(f"config cohort.{key} is required when cohort.sheet is set")
    try:
        # The sheet is read once, here: each patient's jobs see only that patient's row (params) and files
        # (inputs). Then the whole cohort is checked before any job runs, every problem at once (skipped when the
        # files and settings are those of the last check that passed).
        SOURCES = cohort_sources(COHORT_SHEET, config["cohort"], ALL_PHASES)
        check_cohort_once(config, "results/cohort/cohort_check.json", workers=workflow.cores)
    except CmdnetError as err:
        raise WorkflowError(f"cmdnet: the cohort cannot be used:\n{err}") from None
    PATIENTS = list(SOURCES)


def patient_dicom_dirs(wildcards):
    """One patient's DICOM directories (the synthetic cohort's are all made by one job)."""
    return [LAYOUT["dicom"]] if SYNTHETIC else SOURCES[wildcards.patient].dicom_dirs(ALL_PHASES)


def patient_mask_files(wildcards):
    """One patient's mask files: correcting a mask reruns that patient's crops and what follows."""
    return [LAYOUT["masks"]] if SYNTHETIC else SOURCES[wildcards.patient].mask_files(ALL_PHASES)


def patient_series(wildcards):
    """{phase: {dicom, series_uid, mask}} of one patient: the params of its image jobs."""
    return SOURCES[wildcards.patient].series(ALL_PHASES)


def patient_files_digest(wildcards):
    """Size and time of each of the patient's DICOM files: a file replaced in place reruns its conversion."""
    return "" if SYNTHETIC else SOURCES[wildcards.patient].fingerprint(ALL_PHASES, masks=False)

MVI_METHODS = list(config["mvi"]["methods"])
for _name in MVI_METHODS:
    method_spec(_name)  # unknown names fail here, with the known names listed
    if METHODS[_name].objective not in config["mvi"]["objectives"]:
        raise WorkflowError(f"method {_name} is trained with objective {METHODS[_name].objective!r}, which "
                            f"mvi.objectives does not define")
MVI_TEACHERS = teachers_needed(MVI_METHODS)
for _name in MVI_TEACHERS:
    if TEACHERS[_name].objective not in config["mvi"]["objectives"]:
        raise WorkflowError(f"teacher {_name} is trained with objective {TEACHERS[_name].objective!r}, which "
                            f"mvi.objectives does not define")
MVI_NETWORKS = [m for m in MVI_METHODS if not METHODS[m].clinical_only]  # trained by epochs, one job per fold
if config["mvi"]["reference_method"] not in MVI_METHODS:
    raise WorkflowError(f"config mvi.reference_method {config['mvi']['reference_method']!r} is not one of "
                        f"mvi.methods {MVI_METHODS}")
if METHODS[config["mvi"]["reference_method"]].clinical_only:
    raise WorkflowError("config mvi.reference_method: a clinical-only reference cannot be the reference method")
for _name, _override in (config["mvi"].get("overrides") or {}).items():
    if _name not in METHODS and _name not in TEACHERS:
        raise WorkflowError(f"config mvi.overrides: unknown method or teacher {_name!r}; known: "
                            f"{', '.join([*METHODS, *TEACHERS])}")
    for _section, _values in (_override or {}).items():
        _known = config["mvi"]["objectives"][mvi_spec(_name).objective] if _section == "objective" \
            else config["mvi"][_section]
        for _key in sorted(set(_values or {}) - set(_known)):
            raise WorkflowError(f"config mvi.overrides.{_name}: unknown key '{_section}.{_key}'")
for _name in config["grade"]["methods"]:
    grade_method(_name)  # unknown names fail here, with the known names listed
DISTILLATION_MODE = config["mvi"]["distillation"]["mode"]
MVI_REPEATS = list(range(config["folds"]["mvi_repeats"]))
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
    teacher="|".join(TEACHERS),


def print_job_errors(since):
    """At the end of a failed run, the one-line message of every job that stopped on an input or config problem
    (`cmdnet: error: ...` in its log), so the user does not have to find them in Snakemake's output."""
    from cmdnet.stages import job_errors

    errors = job_errors("results/logs", since)
    if errors:
        print(f"\ncmdnet: {len(errors)} job(s) stopped on a problem with the input or the configuration:",
              file=sys.stderr)
        for log, message in errors:
            print(f"  {message}  [{log}]", file=sys.stderr)


def table_files(stem, subcategory=None):
    """Every format a table is written in. As a rule's output (with its report `subcategory`), the HTML page is the
    one the report shows (the others download); the caption lies in report/<stem>.rst."""
    html = f"results/tables/{stem}.html"
    if subcategory is not None:
        html = report(html, category="Tables", subcategory=subcategory, caption=f"../report/{stem}.rst")
    return [html, *multiext(f"results/tables/{stem}", ".md", ".csv", ".tex")]


def mvi_table_outputs(for_report=True):
    """The MVI tables the configured methods give rows to (Table 1 needs the reference method in it)."""
    reference = config["mvi"]["reference_method"]
    stems = {"binary": "table_mvi_binary"}
    if "table1" in METHODS[reference].tables:
        stems["table1"] = "table1_mvi"
    if any("table2" in METHODS[m].tables for m in MVI_METHODS):
        stems["table2"] = "table2_mvi_ablation"
    return {key: table_files(stem, "MVI (CMD-Net)" if for_report else None) for key, stem in stems.items()}


def grade_table_outputs(for_report=True):
    """The grading tables that the configured grade.methods give rows to (the registry, cmdnet/grade/methods.py)."""
    return {table.key: table_files(table.stem, "Grade (local/non-local fusion)" if for_report else None)
            for table in grade_tables_given(config["grade"]["methods"])}


def mvi_figure(name):
    """One MVI figure for the report, with its own caption (report/mvi_<name>.rst)."""
    return report(f"results/figures/mvi/{name}.png", category="Figures", subcategory="MVI (CMD-Net)",
                  caption=f"../report/mvi_{name}.rst")


def grade_figures():
    """ROC curves always; the common/individual spectra when CIFA is configured (the registry)."""
    return expand("results/figures/grade/{figure}.png", figure=grade_figures_given(config["grade"]["methods"]))


def results_of_this_run(wildcards):
    """Every table and the model bundle: what the run description describes."""
    return [f for outputs in (mvi_table_outputs(False), grade_table_outputs(False)) for files in outputs.values()
            for f in files] + [FINAL_BUNDLE]


def mvi_predictions(kind, names, what="oof_predictions"):
    """The out-of-fold (or inner-validation) predictions of methods or teachers."""
    return expand("results/mvi/{kind}/{name}/{what}.parquet", kind=kind, name=names, what=what)


def fold_model(kind, name, repeat, fold):
    return f"results/mvi/{kind}/{name}/repeat{repeat}/fold{fold}/model.pt"


def clinical_inputs(name):
    """The cleaned clinical table and its dictionary, for jobs whose network (or teacher) reads them."""
    reads = name in TEACHERS or METHODS[name].reads_clinical
    return {"clinical": "results/clinical/clinical_clean.parquet", "dictionary": CLINICAL_DICTIONARY} if reads else {}


def method_inputs(wildcards):
    """A method's training inputs: its data, and for a distilled method the clinical table and (offline) the same
    fold's teacher."""
    inputs = clinical_inputs(wildcards.method)
    teacher = METHODS[wildcards.method].teacher
    if teacher is not None and DISTILLATION_MODE == "offline":
        inputs["teacher"] = fold_model("teachers", teacher, wildcards.repeat, wildcards.fold)
    return inputs


def pretrained_weights(wildcards):
    """A local pretrained-weights file the method's network loads (M2Net's backbones), as a dependency."""
    options = mvi_training_params(wildcards.method)["model"].get(METHODS[wildcards.method].model) or {}
    return [options["pretrained_weights"]] if options.get("pretrained_weights") else []


def mvi_training_params(name):
    """The settings one teacher's or method's jobs depend on (`cmdnet.mvi.settings.job_settings`)."""
    return job_settings(config, name)

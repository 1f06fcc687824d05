"""The report's landing page and captions render (Jinja, then docutils, as `snakemake --report` does) without a
docutils "System Message", and the landing page says what ran and whether the cohort is synthetic; the run
description holds counts, commit and digest, never a patient id."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment

from cmdnet.evaluation.run_description import config_digest, describe_run, git_commit, paper_settings, write_run_description

REPO = Path(__file__).resolve().parents[1]
# The report's categories, as the rules name them: a category called like a built-in panel ("Statistics",
# "Workflow") duplicates a link target and puts a "System Message" under every caption.
CATEGORIES = sorted({name for rules in (REPO / "rules").glob("*.smk")
                     for name in re.findall(r'category="([^"]+)"', rules.read_text())})


@dataclass(frozen=True, order=True)
class _Category:  # what snakemake.report passes: hashable, sortable, with a name
    name: str


def _config(**cohort) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["cohort"].update(cohort)
    return config


def _render(rst_path: Path, config: dict, files: list[str]) -> str:
    """Render like snakemake.report: Jinja with `snakemake`, `categories`, `files`, plus its link targets."""
    categories = {_Category(c): {} for c in CATEGORIES}
    records = [SimpleNamespace(target=f, path=f) for f in files]
    links = "\n\n.. _Workflow: javascript:show_panel('workflow')\n.. _Statistics: javascript:show_panel('statistics')\n"
    links += "".join(f".. _{c}: javascript:app.showCategory('{c}')\n" for c in CATEGORIES)
    links += "".join(f".. _{f}: javascript:app.showResultInfo('{f}')\n" for f in files)
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(rst_path.read_text() + links).render(
        snakemake=SimpleNamespace(config=config), categories=categories, files=records)
    return publish_parts(text, writer="html")["html_body"]  # docutils defaults, as snakemake uses them


@pytest.mark.parametrize("synthetic", [True, False])
def test_landing_page_renders_cleanly_and_says_what_ran_and_which_cohort(synthetic):
    config = _config() if synthetic else _config(sheet="/data/cohort.csv", clinical_sheet="/data/clinical.csv",
                                                 clinical_dictionary="/data/dictionary.csv")
    page = _render(REPO / "report" / "workflow.rst", config, ["run_description.html", "table1_mvi.html"])
    assert "System Message" not in page, page
    assert "What ran" in page and "run_description.html" in page
    assert ("SYNTHETIC COHORT" in page) == synthetic
    assert f"{config['synthetic']['n_patients']} patients" in page if synthetic else "/data/cohort.csv" in page
    assert "Statistics" not in page


def test_every_caption_renders_without_a_system_message():
    assert {"Tables", "Figures", "About this run"} <= set(CATEGORIES), CATEGORIES
    config = _config()
    for caption in sorted((REPO / "report").glob("*.rst")):
        html = _render(caption, config, ["run_description.html"])
        assert "System Message" not in html, f"{caption.name}: {html}"


def test_run_description_counts_classes_and_names_no_patient(tmp_path):
    labels = pd.DataFrame({"patient_id": ["SYN001", "SYN002", "SYN003", "SYN004"], "mvi": [0, 0, 1, 2],
                           "grade": [0, 1, 1, 1]})
    facts = describe_run(_config(), labels, commit="abc123", paper_config=paper_settings(REPO))
    assert facts["cohort"] == "synthetic" and facts["mvi_counts"] == {"M0": 2, "M1": 1, "M2": 1}
    assert facts["grade_counts"] == {"low": 1, "high": 3}
    epochs = next(row for row in facts["scale"] if row["setting"] == "MVI epochs")
    assert epochs["papers (config/paper.yaml)"] == "100", "paper settings come from config/paper.yaml"
    page = write_run_description(facts, tmp_path / "run.html").read_text()
    assert "SYNTHETIC" in page and "M0 2, M1 1, M2 1" in page and "abc123" in page
    assert not any(pid in page for pid in labels["patient_id"]), "a patient id reached the run description"
    json.dumps(facts)  # plain data


def test_config_digest_changes_with_any_setting_and_not_with_key_order():
    a = {"seed": 0, "mvi": {"epochs": 8, "width": 0.125}}
    b = {"mvi": {"width": 0.125, "epochs": 8}, "seed": 0}
    assert config_digest(a) == config_digest(b)
    assert config_digest(a) != config_digest({"seed": 0, "mvi": {"epochs": 9, "width": 0.125}})


def test_git_commit_outside_a_checkout_says_unknown(tmp_path):
    assert git_commit(tmp_path).startswith("unknown")

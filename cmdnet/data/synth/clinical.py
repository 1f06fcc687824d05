"""The synthetic clinical sheet: 52 preoperative items (labs, history, radiologist hallmarks) and their dictionary.

Label-dependent items shift with MVI by `clinical_signal x effect x mvi_step`, with noise drawn
independently of the image features, so the sheet holds MVI information the images do not show. The
items, their units and the size of each effect are listed in `docs/synthetic_cohort.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cmdnet.data.synth.phantom import Tumour


@dataclass(frozen=True)
class Item:
    column: str         # header in the clinical sheet
    name: str           # canonical snake_case name
    type: str           # numeric, binary, categorical
    unit: str = ""
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    description: str = ""
    decimals: int = 1   # rounding of numeric values in the sheet


NO_YES = ("no", "yes")
NEG_POS = ("negative", "positive")

ITEMS: tuple[Item, ...] = (
    Item("Age", "age", "numeric", "years", 18, 95, decimals=0, description="age at surgery"),
    Item("Sex", "sex", "binary", categories=("F", "M"), description="sex"),
    Item("BMI", "bmi", "numeric", "kg/m2", 14, 45, description="body-mass index"),
    Item("HBsAg", "hbsag", "binary", categories=NEG_POS, description="hepatitis B surface antigen"),
    Item("Anti-HCV", "anti_hcv", "binary", categories=NEG_POS, description="hepatitis C antibody"),
    Item("HBV-DNA (log10 IU/mL)", "hbv_dna_log10", "numeric", "log10 IU/mL", 0, 9, description="HBV viral load"),
    Item("Antiviral therapy", "antiviral_therapy", "binary", categories=NO_YES, description="nucleos(t)ide therapy"),
    Item("Alcohol abuse", "alcohol", "binary", categories=NO_YES, description="alcohol abuse history"),
    Item("Diabetes", "diabetes", "binary", categories=NO_YES, description="diabetes mellitus"),
    Item("Hypertension", "hypertension", "binary", categories=NO_YES, description="arterial hypertension"),
    Item("Smoking", "smoking", "binary", categories=NO_YES, description="current or former smoker"),
    Item("Family history HCC", "family_history_hcc", "binary", categories=NO_YES,
         description="first-degree relative with HCC"),
    Item("Cirrhosis", "cirrhosis", "binary", categories=NO_YES, description="cirrhosis (imaging or histology)"),
    Item("Child-Pugh", "child_pugh", "categorical", categories=("A", "B", "C"), description="Child-Pugh class"),
    Item("BCLC", "bclc", "categorical", categories=("0", "A", "B", "C"), description="BCLC stage"),
    Item("Ascites", "ascites", "binary", categories=NO_YES, description="ascites on imaging"),
    Item("Oesophageal varices", "varices", "binary", categories=NO_YES, description="oesophageal varices"),
    Item("AFP (ng/mL)", "afp", "numeric", "ng/mL", 0.5, 100000, description="alpha-fetoprotein"),
    Item("PIVKA-II (mAU/mL)", "pivka_ii", "numeric", "mAU/mL", 5, 75000, decimals=0,
         description="protein induced by vitamin K absence-II (DCP)"),
    Item("CEA (ng/mL)", "cea", "numeric", "ng/mL", 0.1, 100, decimals=2, description="carcinoembryonic antigen"),
    Item("CA19-9 (U/mL)", "ca19_9", "numeric", "U/mL", 0.5, 1000, description="carbohydrate antigen 19-9"),
    Item("ALT (U/L)", "alt", "numeric", "U/L", 3, 1000, decimals=0, description="alanine aminotransferase"),
    Item("AST (U/L)", "ast", "numeric", "U/L", 5, 1000, decimals=0, description="aspartate aminotransferase"),
    Item("GGT (U/L)", "ggt", "numeric", "U/L", 5, 2000, decimals=0, description="gamma-glutamyl transferase"),
    Item("ALP (U/L)", "alp", "numeric", "U/L", 20, 1000, decimals=0, description="alkaline phosphatase"),
    Item("Albumin (g/L)", "albumin", "numeric", "g/L", 15, 60, description="serum albumin"),
    Item("TBIL (umol/L)", "total_bilirubin", "numeric", "umol/L", 2, 300, description="total bilirubin"),
    Item("DBIL (umol/L)", "direct_bilirubin", "numeric", "umol/L", 0.5, 200, description="direct bilirubin"),
    Item("Total protein (g/L)", "total_protein", "numeric", "g/L", 40, 100, description="serum total protein"),
    Item("Globulin (g/L)", "globulin", "numeric", "g/L", 10, 60, description="serum globulin"),
    Item("Prealbumin (mg/L)", "prealbumin", "numeric", "mg/L", 30, 450, decimals=0, description="prealbumin"),
    Item("PLT (10^9/L)", "platelets", "numeric", "10^9/L", 10, 600, decimals=0, description="platelet count"),
    Item("WBC (10^9/L)", "wbc", "numeric", "10^9/L", 1, 25, decimals=2, description="white blood cell count"),
    Item("Neutrophils (10^9/L)", "neutrophils", "numeric", "10^9/L", 0.3, 20, decimals=2,
         description="neutrophil count"),
    Item("Lymphocytes (10^9/L)", "lymphocytes", "numeric", "10^9/L", 0.1, 8, decimals=2,
         description="lymphocyte count"),
    Item("Hb (g/L)", "hemoglobin", "numeric", "g/L", 50, 200, decimals=0, description="haemoglobin"),
    Item("INR", "inr", "numeric", "", 0.7, 4, decimals=2, description="international normalised ratio"),
    Item("PT (s)", "pt", "numeric", "s", 8, 40, description="prothrombin time"),
    Item("APTT (s)", "aptt", "numeric", "s", 15, 80, description="activated partial thromboplastin time"),
    Item("Creatinine (umol/L)", "creatinine", "numeric", "umol/L", 20, 600, decimals=0, description="creatinine"),
    Item("Urea (mmol/L)", "urea", "numeric", "mmol/L", 1, 40, description="blood urea nitrogen"),
    Item("Glucose (mmol/L)", "glucose", "numeric", "mmol/L", 2, 30, description="fasting glucose"),
    Item("Tumour size (mm)", "tumour_size_mm", "numeric", "mm", 5, 200, decimals=0,
         description="largest tumour diameter on MRI (radiologist)"),
    Item("Number of lesions", "n_lesions", "numeric", "count", 1, 10, decimals=0, description="number of HCC nodules"),
    Item("Non-smooth margin", "non_smooth_margin", "binary", categories=NO_YES,
         description="non-smooth tumour margin on HBP (radiologist)"),
    Item("Peritumoral enhancement (AP)", "peritumoral_enhancement", "binary", categories=NO_YES,
         description="arterial peritumoral enhancement (radiologist)"),
    Item("Peritumoral hypointensity (HBP)", "peritumoral_hypointensity", "binary", categories=NO_YES,
         description="peritumoral hypointensity on HBP (radiologist)"),
    Item("Capsule", "capsule", "categorical", categories=("absent", "incomplete", "complete"),
         description="tumour capsule (radiologist)"),
    Item("Arterial hyperenhancement", "arterial_hyperenhancement", "binary", categories=NO_YES,
         description="non-rim arterial phase hyperenhancement (radiologist)"),
    Item("Washout", "washout", "binary", categories=NO_YES, description="portal-venous washout (radiologist)"),
    Item("Intratumoral artery", "intratumoral_artery", "binary", categories=NO_YES,
         description="intratumoral artery on AP (radiologist)"),
    Item("Necrosis", "necrosis", "binary", categories=NO_YES, description="intratumoral necrosis (radiologist)"),
)
IDENTIFIER_COLUMN = "name"


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def draw_demographics(rng: np.random.Generator) -> tuple[str, int]:
    """(sex, age in years) of one patient; drawn first because the fake identity needs them."""
    sex = "M" if rng.uniform() < 0.82 else "F"
    return sex, int(np.clip(round(rng.normal(55, 10)), 25, 85))


def clinical_values(rng: np.random.Generator, mvi: int, high_grade: int, tumour: Tumour, sex: str, age: int,
                    signal: float) -> dict[str, Any]:
    """One patient's 52 items by canonical name (binary/categorical as their category text).

    `signal` (clinical_signal) scales every label effect; see docs/synthetic_cohort.md for the table.
    """
    c, m, g = signal, mvi, high_grade

    def yes(p: float) -> str:
        return NO_YES[int(rng.uniform() < p)]

    def pos(p: float) -> str:
        return NEG_POS[int(rng.uniform() < p)]

    v: dict[str, Any] = {"age": age, "sex": sex, "bmi": rng.normal(23.5, 3.0)}
    hbv = rng.uniform() < 0.8
    v["hbsag"] = NEG_POS[int(hbv)]
    v["anti_hcv"] = pos(0.05)
    v["hbv_dna_log10"] = rng.normal(3.5 + 0.3 * c * m, 1.5) if hbv else rng.normal(0.8, 0.4)
    v["antiviral_therapy"] = yes(0.6 if hbv else 0.05)
    for name, p in (("alcohol", 0.2), ("diabetes", 0.15), ("hypertension", 0.25), ("smoking", 0.3),
                    ("family_history_hcc", 0.1)):
        v[name] = yes(p)
    cirrhosis = rng.uniform() < 0.6
    v["cirrhosis"] = NO_YES[int(cirrhosis)]
    cp = rng.choice(3, p=[0.8, 0.18, 0.02] if cirrhosis else [0.97, 0.03, 0.0])
    v["child_pugh"] = "ABC"[cp]
    v["ascites"] = yes(0.05 + 0.2 * cp)
    v["varices"] = yes(0.3 if cirrhosis else 0.02)

    v["afp"] = math.exp(rng.normal(2.6 + 0.9 * c * m + 0.4 * c * g, 1.6))
    v["pivka_ii"] = math.exp(rng.normal(4.0 + 0.8 * c * m, 1.4))
    v["cea"] = math.exp(rng.normal(0.8, 0.5))
    v["ca19_9"] = math.exp(rng.normal(2.6, 0.7))
    v["alt"] = math.exp(rng.normal(3.5, 0.5))
    v["ast"] = math.exp(rng.normal(3.5 + 0.1 * c * m, 0.45))
    v["ggt"] = math.exp(rng.normal(3.9 + 0.35 * c * m, 0.7))
    v["alp"] = math.exp(rng.normal(4.5 + 0.08 * c * m, 0.35))
    v["albumin"] = rng.normal(41 - 3 * cirrhosis - 3 * cp - 0.8 * c * m, 4)
    v["total_bilirubin"] = math.exp(rng.normal(2.6 + 0.2 * cirrhosis + 0.4 * cp, 0.4))
    v["direct_bilirubin"] = v["total_bilirubin"] * rng.uniform(0.2, 0.45)
    v["total_protein"] = rng.normal(70, 6)
    v["globulin"] = v["total_protein"] - v["albumin"]
    v["prealbumin"] = rng.normal(190 - 30 * cirrhosis, 50)
    v["platelets"] = math.exp(rng.normal(5.1 - 0.35 * cirrhosis, 0.4))
    v["wbc"] = math.exp(rng.normal(1.65, 0.3))
    v["neutrophils"] = v["wbc"] * rng.uniform(0.5, 0.7) * (1 + 0.08 * c * m)
    v["lymphocytes"] = v["wbc"] * rng.uniform(0.2, 0.35) * (1 - 0.08 * c * m)
    v["hemoglobin"] = rng.normal(140 if sex == "M" else 125, 14)
    v["inr"] = rng.normal(1.03 + 0.08 * cirrhosis + 0.15 * cp, 0.08)
    v["pt"] = 11.5 * v["inr"] + rng.normal(0, 0.4)
    v["aptt"] = rng.normal(33, 4)
    v["creatinine"] = rng.normal(78 if sex == "M" else 62, 14)
    v["urea"] = rng.normal(5.2, 1.3)
    v["glucose"] = rng.normal(7.5 if v["diabetes"] == "yes" else 5.3, 0.8)

    z = tumour.zscores
    v["tumour_size_mm"] = tumour.diameter * rng.normal(1.0, 0.06)
    n_lesions = 1 + int(rng.poisson(0.15 + 0.25 * c * m))
    v["n_lesions"] = n_lesions
    # radiologist hallmarks read the image (its standardised features z) and see more than the phantom draws
    v["non_smooth_margin"] = yes(_logistic(-0.8 + 1.2 * z["irregularity"] + 0.5 * c * m))
    v["peritumoral_enhancement"] = yes(_logistic(-1.2 + 1.2 * z["ap_rim"] + 0.4 * c * m))
    v["peritumoral_hypointensity"] = yes(_logistic(-1.2 + 1.2 * z["hbp_rim"] + 0.4 * c * m))
    capsule_score = rng.normal(0.4 * c * m, 1.0)
    v["capsule"] = "complete" if capsule_score < -0.3 else ("incomplete" if capsule_score < 0.9 else "absent")
    v["arterial_hyperenhancement"] = yes(_logistic(1.7 + 0.8 * z["ap_ratio"]))
    v["washout"] = yes(0.75)
    v["intratumoral_artery"] = yes(_logistic(-1.5 + 0.6 * c * m))
    v["necrosis"] = yes(_logistic(-2.0 + 0.03 * (tumour.diameter - 30) + 0.5 * z["heterogeneity"]))

    size_bclc = v["tumour_size_mm"] > 50 or n_lesions > 1
    bclc = "0" if (v["tumour_size_mm"] <= 20 and n_lesions == 1 and cp == 0) else ("B" if n_lesions > 3 else "A")
    if bclc == "A" and size_bclc and rng.uniform() < 0.3 + 0.15 * c * m:
        bclc = "C"
    v["bclc"] = bclc

    for item in ITEMS:  # plausible ranges and sheet rounding
        if item.type == "numeric":
            v[item.name] = round(float(np.clip(v[item.name], item.min, item.max)), item.decimals)
            if item.decimals == 0:
                v[item.name] = int(v[item.name])
    return v


def clinical_sheet(rows: list[dict[str, Any]], patient_ids: list[str], names: list[str],
                   missing_rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """The sheet: `patient_id`, a fake `name`, then one column per item (sheet headers), cells missing at random."""
    data = pd.DataFrame([{item.column: row[item.name] for item in ITEMS} for row in rows])
    missing = rng.uniform(size=data.shape) < missing_rate
    data = data.astype(object).mask(missing)
    for item in ITEMS:  # integers stay integers in the CSV despite missing cells
        if item.type == "numeric" and item.decimals == 0:
            data[item.column] = data[item.column].astype("Int64")
    data.insert(0, IDENTIFIER_COLUMN, names)
    data.insert(0, "patient_id", patient_ids)
    return data


def clinical_dictionary() -> pd.DataFrame:
    """The dictionary CSV: column, name, type, unit, min, max, categories (`|`-separated), description."""
    return pd.DataFrame([{
        "column": i.column, "name": i.name, "type": i.type, "unit": i.unit,
        "min": "" if i.min is None else i.min, "max": "" if i.max is None else i.max,
        "categories": "|".join(i.categories), "description": i.description,
    } for i in ITEMS])

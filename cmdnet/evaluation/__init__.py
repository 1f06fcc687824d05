"""Statistics (`stats`), the rendering of the papers' tables (`tables`) and figures (`figures`), and the
MVI experiment's evaluation (`mvi`). The grading paper's evaluation lives with its models in `cmdnet.grade`."""

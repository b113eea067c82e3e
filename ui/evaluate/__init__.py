"""The Evaluate tab: a dataset (an upload or a Hub id), its columns, a task, one or more models -> a scored run.

    with gr.Tab(t("tab_evaluate"), id="evaluate", elem_id="tab-evaluate"):
        build_evaluate_tab(registry)

All the work is backend.evaluation's (the same runner as `python app.py eval`, so the tab and the command give
the same numbers). The package's modules, each one job:

    forms.py       the form's values (`EvalForm`) and widgets (`FormPanel`), constants
    task_forms.py  the pipeline tasks (NER, QA, summarization, translation): models, columns, their own fields
    controller.py  `EvaluateController`: data, jobs per session, saved runs; widget-free
    views.py       a run / runs / progress as tables, HTML and text
    results.py     `ResultsPanel`: the run on show
    runs.py        `RunsPanel`: past runs, reopen, compare
    prefill.py     "Compare with base" from the Train tab: a finished run -> this form, prefilled (and run)
    tab.py         `EvaluateTab`: the data panel and the wiring
"""

from ui.evaluate.controller import EvaluateController
from ui.evaluate.forms import ALL_MODELS, DataView, EvalForm
from ui.evaluate.tab import EvaluateTab, build_evaluate_tab
from ui.evaluate.views import format_number

__all__ = ["ALL_MODELS", "DataView", "EvalForm", "EvaluateController", "EvaluateTab", "build_evaluate_tab",
           "format_number"]

"""Table headers in the request's language (issue 20): Gradio's Dataframe translates no i18n marker in its
headers, so the app's own tables are headed on the server (ui.i18n.core.headed). A zh-CN request gets Chinese headers,
any other request and a call outside one the English column names of today; a user's columns, metric names and
the frames behind plots keep their names, and the downloads keep English.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import gradio as gr
import pandas as pd
import pytest
from gradio.context import LocalContext

from backend.training.service import TrainingService
from tests.test_ui_evaluate import REQUEST, SENTIMENT, Tab, final, write_csv
from ui.i18n.core import HEADER_KEYS, STRINGS, columns, headed
from ui.models.tab import COLUMNS, ModelsTab, status_rows
from ui.train.tab import RUN_COLUMNS, TrainTab

ZH = gr.Request(headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"})
EN = gr.Request(headers={"accept-language": "en-US,en;q=0.9"})


@contextmanager
def serving(request: gr.Request) -> Iterator[None]:
    """As Gradio does around every event handler: the request being served, for code that is not passed it."""
    token = LocalContext.request.set(request)
    try:
        yield
    finally:
        LocalContext.request.reset(token)


def test_known_headers_are_worded_for_the_request_and_others_kept() -> None:
    assert columns("state", "load time", "bleu", request=ZH) == ["状态", "加载耗时", "bleu"]
    assert columns("state", "load time", "bleu", request=EN) == ["state", "load time", "bleu"]
    assert columns("state") == ["state"]  # outside a request: English
    frame = pd.DataFrame({"row": [1], "score": [0.5], "label": ["a user's column"]})
    assert list(headed(frame, names=("row", "score"), request=ZH).columns) == ["行", "分数", "label"]
    assert headed(frame, request=EN) is frame
    assert headed({"headers": ["id", "state"], "data": []}, request=ZH)["headers"] == ["ID", "状态"]
    # Each English header names one key, so a header is never worded by the wrong entry.
    assert len(HEADER_KEYS) == len([key for key in STRINGS if key.startswith("col_")])


def test_the_models_table_is_headed_in_the_request_language(shared_registry) -> None:
    tab = ModelsTab(shared_registry, table=None)  # type: ignore[arg-type]
    with serving(ZH):
        chinese = tab.rows()
    assert chinese["headers"][:4] == ["ID", "状态", "任务", "权重"] and len(set(chinese["headers"])) == len(COLUMNS)
    with serving(EN):
        assert tab.rows()["headers"] == COLUMNS
    assert status_rows(shared_registry.status())["headers"] == COLUMNS  # built before any request: English
    assert chinese["data"] == tab.rows()["data"]  # only the headers change


def test_the_train_runs_table_is_headed_in_the_request_language(shared_registry, tmp_path: Path) -> None:
    with gr.Blocks() as demo:
        tab = TrainTab.build(shared_registry, TrainingService(shared_registry, root=tmp_path / "runs"))
    assert tab.table(ZH)[0]["headers"] == ["运行", "状态", "任务", "基础模型", "步数", "准确率 / 验证损失", "注册名称", "原因"]
    assert tab.table(EN)[0]["headers"] == RUN_COLUMNS
    # Listed on page load (an event with no trigger runs on load), so a Chinese page never keeps the English
    # headers the table was built with.
    assert any(fn.name == "table" and [event for _, event in fn.targets] == ["load"] for fn in demo.fns.values())


@pytest.fixture
def tab(shared_registry, tmp_path: Path) -> Tab:
    return Tab(shared_registry, tmp_path / "runs")


def test_evaluate_tables_are_headed_in_the_request_language(tab: Tab, tmp_path: Path) -> None:
    reviews = write_csv(tmp_path / "reviews.csv", pd.DataFrame({"text": [t for t, _ in SENTIMENT],
                                                                 "label": [label for _, label in SENTIMENT]}))
    form = {"eval-task": "classification", "eval-input-col": "text", "eval-reference-col": "label",
            "eval-models": ["tiny-classifier"]}
    with serving(ZH):
        last = final(tab.run({"path": str(reviews)}, form))
    board = tab.value(last, "eval-leaderboard")
    assert list(board.columns[:3]) == ["模型", "状态", "样本数"] and list(board.columns)[-1] == "秒"
    assert "accuracy" in board.columns  # metric names stay as they are
    assert list(tab.value(last, "eval-per-class").columns) == ["标签", "精确率", "召回率", "f1", "样本数"]
    examples = tab.value(last, "eval-examples")
    assert list(examples.columns[:5]) == ["模型", "行", "输入", "参考答案", "预测"] and "正确" in examples.columns
    assert list(tab.value(last, "eval-runs").columns) == ["运行", "创建时间", "任务", "数据", "模型", "主要指标", "状态"]
    chart = last[tab["eval-chart"]]
    assert list(chart.value["columns"]) == ["model", "score"]  # the chart's frame keeps the names its axes use
    # The download is a file format: its columns stay English.
    assert tab.file(last, "eval-download-csv").read_text().startswith("model,row,input,reference,prediction")
    run_id = tab.ctl.past_runs()[0].run_id
    with serving(ZH):
        _summary, _row, left, _right = tab.call("on_compare", run_id, run_id, REQUEST)
        per_class, _heat = tab.call("on_report_model", str(tab.ctl.past_runs()[0].path), "tiny-classifier")
    assert list(left.value["headers"])[:3] == ["模型", "状态", "样本数"] and per_class.columns[0] == "标签"
    with serving(EN):
        english = final(tab.run({"path": str(reviews)}, form))
    assert list(tab.value(english, "eval-leaderboard").columns[:3]) == ["model", "status", "n"]
    assert list(tab.value(english, "eval-runs").columns)[:2] == ["run", "created"]


class Views:
    """A tab built in a Blocks of its own; handlers by name, called with {component: value} as Gradio does."""

    def __init__(self, build, registry, own_tab: bool = True) -> None:  # noqa: ANN001
        with gr.Blocks() as demo:
            with gr.Tabs():
                if own_tab:  # the build makes its own gr.Tab
                    build(registry)
                else:
                    with gr.Tab("tab"):
                        build(registry)
        self.demo = demo
        self.fns = {}
        for fn in demo.fns.values():
            self.fns.setdefault(fn.name, fn)
        self.by_id: dict = {}
        for block in demo.blocks.values():
            if getattr(block, "elem_id", None):
                self.by_id.setdefault(block.elem_id, block)

    def call(self, name: str, values: dict, *args) -> tuple:  # noqa: ANN001
        return self.fns[name].fn({self.by_id[key]: value for key, value in values.items()}, *args)


def test_task_tables_are_headed_in_the_request_language(shared_registry, tmp_path: Path) -> None:
    from backend.tasks import service
    from ui.tasks import build_tasks_tab

    views = Views(build_tasks_tab, shared_registry)
    ner = {"ner-model": "tiny-ner", "ner-aggregation": "simple", "ner-text": "Alice lives in Paris."}
    qa = {"qa-model": "tiny-qa", "qa-top-k": 2, "qa-stride": 128, "qa-question": "Where does Alice live?",
          "qa-context": "Alice lives in Paris."}
    mask = {"mask-model": "tiny-mlm", "mask-top-k": 2,
            "mask-text": f"Alice lives in {service.mask_token_of(shared_registry, 'tiny-mlm')}."}
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"text": ["a cat sat", "dogs bark", "the sea"], "label": ["x", "y", "z"]}).to_csv(corpus, index=False)
    embed = {"embed-model": "tiny-embed", "embed-corpus-file": str(corpus), "embed-corpus-column": "text",
             "embed-label-column": None, "embed-query": "a cat", "embed-top-k": 2}
    with serving(ZH):
        _marked, entities = views.call("find", ner)
        _line, _marked, answers = views.call("ask", qa)
        chart, sequences = views.call("fill", mask)
        hits = views.call("run_search", embed)
    assert list(entities.columns) == ["实体", "文本", "分数", "起始", "结束"]
    assert list(answers.columns) == ["答案", "分数", "起始", "结束"]
    assert list(sequences.columns) == ["掩码", "候选词", "概率", "文本"]
    assert list(chart.columns) == ["candidate", "mask", "probability"]  # the chart's x / y / color
    # The app's two columns are headed; the file's own ("text", "label") keep their names.
    assert list(hits.columns) == ["行", "分数", "text", "label"] and len(hits) == 2
    # A file with its own "score" column keeps it next to the app's (it used to fail: "score already exists").
    scored = tmp_path / "scored.csv"
    pd.DataFrame({"text": ["a cat sat", "dogs bark"], "score": [1, 2]}).to_csv(scored, index=False)
    hits = views.call("run_search", {**embed, "embed-corpus-file": str(scored)})
    assert list(hits.columns) == ["row", "score", "text", "score (file)"] and str(hits["score (file)"].tolist()[0]) in ("1", "2")
    # A file run: the column the run added is headed, the file's columns and the download keep their names.
    run_file = next(fn for fn in views.demo.fns.values()
                    if fn.name == "run_file" and views.by_id["ner-file"] in fn.inputs)
    values = {"ner-model": "tiny-ner", "ner-aggregation": "simple", "ner-file": str(corpus), "ner-column": "text",
              "ner-question-column": None, "ner-batch-size": 4}
    with serving(ZH):
        _status, shown, download = run_file.fn({views.by_id[k]: v for k, v in values.items()},
                                               SimpleNamespace(session_hash="s", username=None), lambda *a, **k: None)
    assert list(shown.columns) == ["text", "label", "实体"]
    assert Path(download.value["path"]).read_text().startswith("text,label,entities")
    with serving(EN):
        assert list(views.call("find", ner)[1].columns) == ["entity", "text", "score", "start", "end"]
        assert list(views.call("fill", mask)[1].columns) == ["mask", "candidate", "probability", "text"]


def test_classify_results_head_the_apps_columns_and_keep_the_files(shared_registry, tmp_path: Path) -> None:
    from ui.classify.tab import build_classify_tab

    views = Views(build_classify_tab, shared_registry)
    good = tmp_path / "good.csv"
    good.write_text("id,review\n1,great film\n2,awful food\n")
    values = {"classify-mode": "supervised", "classify-model": "tiny-classifier", "classify-labels": "",
              "classify-multi-label": False, "classify-hypothesis": "This is {}.",
              "classify-prompt-template": "{text}", "classify-batch-size": 4, "classify-file": str(good),
              "classify-column": "review"}
    request = SimpleNamespace(session_hash="s", username=None)
    with serving(ZH):
        _status, shown, download = views.call("classify_file", values, request, lambda *a, **k: None)
    assert list(shown.columns[:4]) == ["id", "review", "预测标签", "预测分数"]
    assert all(str(name).startswith("分数: ") for name in shown.columns[4:]) and len(shown.columns) > 4
    assert Path(download.value["path"]).read_text().startswith("id,review,predicted_label,predicted_score,score: ")
    with serving(EN):
        english = views.call("classify_file", values, request, lambda *a, **k: None)[1]
    assert list(english.columns[:4]) == ["id", "review", "predicted_label", "predicted_score"]


def test_data_tables_are_headed_and_the_plot_frames_keep_their_names(shared_registry, tmp_path: Path,
                                                                     monkeypatch) -> None:
    from ui.data.tab import DataTab
    from ui.data.saved import saved_rows

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    views = Views(DataTab.build, shared_registry, own_tab=False)
    table = pd.DataFrame({"text": ["a b", "c d e", "f"], "label": ["x", "y", "x"]})
    with serving(ZH):
        summary, _lines, labels, histogram, *_ = views.fns["analyse"].fn(table, "text", "label", None)
        saved, _pick = saved_rows(ZH)
    assert list(summary.columns) == ["列", "类型", "空值", "重复", "不同值"] and list(summary.iloc[:, 0]) == ["text", "label"]
    assert list(labels.columns[:2]) == ["label", "rows"] and list(histogram.value["columns"]) == ["length", "rows"]
    assert list(saved.columns) == ["名称", "类型", "行数", "创建时间"]
    assert list(saved_rows(EN)[0].columns) == ["name", "kind", "rows", "created"]
    with serving(EN):
        assert list(views.fns["analyse"].fn(table, "text", "label", None)[0].columns)[:2] == ["column", "type"]

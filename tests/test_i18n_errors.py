"""Backend refusals in words, in Chinese for a Chinese browser and in English for anyone else: each error is made
by the real backend code (files written to tmp_path, the tiny models, the real checks), then worded by the UI from
its code and params (ui/i18n/error_words.py), never from its message. A refusal that loses its code, or a code whose
wording drifts from its params, fails here instead of showing a half-translated sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from backend.data.feedback import save_feedback_dataset
from backend.data.jobs import DataJob
from backend.data.pipeline import prepare
from backend.data.recipe import Recipe, parse_fractions
from backend.data.store import check_name
from backend.data.files import read_table
from backend.evaluation.data import DataSource, check_hub_id
from backend.guard.table_limits import TableLimits
from backend.tasks import service
from backend.tasks.catalog import pair_error
from backend.tasks.files import run_table
from backend.training.config import TrainConfig
from backend.training.recipes.classification import prepare_classification
from backend.core.types import WorkbenchError
from backend.guard.user_space import user_dir
from ui.i18n.error_words import worded


class Headers:
    def __init__(self, accept_language: str) -> None:
        self.headers = {"accept-language": accept_language}


CHINESE = Headers("zh-CN,zh;q=0.9,en;q=0.8")

Case = tuple[WorkbenchError, str, str]  # the error, its Chinese wording, its English wording


def refusal(action: Callable[[], object]) -> WorkbenchError:
    with pytest.raises(WorkbenchError) as error:
        action()
    assert error.value.code, f"no code: {error.value}"  # a refusal the UI words must say what it is
    return error.value


def check(cases: list[Case]) -> None:
    for error, chinese, english in cases:
        assert worded(error, CHINESE) == chinese, str(error)
        assert worded(error) == english, str(error)


def written(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_upload_refusals(tmp_path: Path) -> None:
    rows = written(tmp_path, "rows.csv", "text,label\n" + "".join(f"row {n},a\n" for n in range(5)))
    parquet = tmp_path / "wide.parquet"
    pd.DataFrame({"text": ["word " * 40] * 50}).to_parquet(parquet)
    check([
        (refusal(lambda: read_table(written(tmp_path, "empty.csv", ""))),
         "文件“empty.csv”是空的。",
         "'empty.csv' is empty."),
        (refusal(lambda: read_table(written(tmp_path, "blank.csv", "  \n"))),
         "文件“blank.csv”是空的。",
         "'blank.csv' is empty (only blank space)."),
        (refusal(lambda: read_table(written(tmp_path, "head.csv", "text,label\n"))),
         "文件“head.csv”只有表头，没有数据行。",
         "'head.csv' has a header but no rows."),
        (refusal(lambda: read_table(rows, max_bytes=10)),
         "文件“rows.csv”大小为 0.0 MB，上限为 0 MB。请拆分成较小的文件。",
         "'rows.csv' is 0.0 MB; the limit is 0 MB. Split it into smaller files."),
        (refusal(lambda: read_table(rows, max_rows=2)),
         "文件“rows.csv”有 5 行，上限为 2 行。请拆分成较小的文件。",
         "'rows.csv' has 5 rows; the limit is 2. Split it into smaller files."),
        (refusal(lambda: read_table(rows, limits=TableLimits(max_columns=1))),
         "文件“rows.csv”有 2 列，上限为 1 列。请只保留需要的列。",
         "'rows.csv' has 2 columns; the limit is 1. Keep only the columns you need."),
        (refusal(lambda: read_table(rows, limits=TableLimits(max_cell_chars=3))),
         "文件“rows.csv”的“text”列中有一个单元格含 5 个字符，每个单元格最多 3 个。请缩短或拆分这段文本。",
         "'rows.csv': a cell of column 'text' holds 5 characters; the limit is 3. Shorten or split that text."),
        (refusal(lambda: read_table(parquet, limits=TableLimits(max_table_bytes=1000))),
         "文件“wide.parquet”解码后有 0 MB 文本，上限为 0 MB。请拆分成较小的文件。",
         "'wide.parquet' expands to 0 MB of text once decoded; the limit is 0 MB. Split it into smaller files."),
    ])


def test_task_bad_input(registry) -> None:
    blank = pd.DataFrame({"text": ["", "  "]})
    check([
        (refusal(lambda: service.answer_question(registry, "tiny-qa", "Where is it?", "   ")),
         "请粘贴答案所在的上下文文本。", "Paste the text the answer should come from."),
        (refusal(lambda: service.fill_masks(registry, "tiny-mlm", "No mask here.")),
         "文本中没有掩码标记；请在要预测的词的位置写上 [MASK]（此模型的掩码标记）。",
         "Put [MASK] where a word should be predicted (this model's mask token)."),
        (refusal(lambda: service.fill_masks(registry, "tiny-mlm", "The [MASK] " * 11)),
         "文本中有 11 个掩码标记，最多 10 个。", "11 mask tokens; at most 10."),
        (refusal(lambda: run_table(registry, "tiny-embed", "embed", blank, "text")),
         "“text”列在每一行都是空的；请选择包含文本的列。",
         "The column 'text' is empty in every row; pick the column that holds the text."),
        (pair_error([("en", "de"), ("en", "fr")], "en", "ja"),
         "此模型不能把 en 翻译成 ja；它支持：en → de, en → fr。",
         "This model does not translate en → ja; it translates en → de, en → fr."),
    ])


def test_data_tab_refusals(tmp_path: Path) -> None:
    source = DataSource(path=str(tmp_path / "rows.csv"))
    empty_rows = written(tmp_path, "rows.csv", "text,label\n ,a\n  ,b\n")
    (user_dir("datasets", None, tmp_path) / "reviews").mkdir(parents=True)
    dropping = Recipe(source, text_column="text", clean=("empty",))
    check([
        (refusal(lambda: Recipe(source, text_column="").validated()),
         "请选择包含文本的列。", "Pick the column that holds the text."),
        (refusal(lambda: Recipe(source, text_column="text", label_column="text").validated()),
         "标签列不能与文本列相同。", "The label column must differ from the text column."),
        (refusal(lambda: Recipe(source, text_column="text", split=(0.5, 0.2, 0.2)).validated()),
         "划分比例之和必须为 1，且训练集比例大于 0（当前为 0.5, 0.2, 0.2）。",
         "The split fractions must add up to 1 with a training part, got 0.5, 0.2, 0.2."),
        (refusal(lambda: parse_fractions("most,some")),
         "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 'most,some'）。",
         "Write the split as fractions like 0.8,0.1,0.1, got 'most,some'."),
        (refusal(lambda: parse_fractions("1")),
         "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 '1'）。",
         "Write the split as two or three fractions like 0.8,0.1,0.1, got '1'."),
        (refusal(lambda: check_name("../up")),
         "“../up”不是有效的数据集名称；请只用字母、数字、“.”、“_”和“-”（最多 64 个字符，以字母或数字开头）。",
         "'../up' is not a valid dataset name; use letters, digits, '.', '_' and '-' (at most 64 characters, "
         "starting with a letter or digit)."),
        (refusal(lambda: save_feedback_dataset("ann", "liked", "sft", root=tmp_path)),
         "还没有被点赞的回复；请先在聊天中用大拇指按钮为回复评分。",
         "No reply is rated up yet; rate replies in Chat with the thumbs."),
        # A saved name that is taken, and a recipe that drops every row (what the job's child process raises; the
        # tab rebuilds the error from the job's status file, code and params included).
        (refusal(lambda: DataJob.start(Recipe(source, text_column="text"), "reviews", None, root=tmp_path)),
         "已有名为“reviews”的数据集；请换一个名称。", "A dataset named 'reviews' exists already; pick another name."),
        (refusal(lambda: prepare(dropping, table=pd.read_csv(empty_rows))),
         "清洗后没有剩下任何行（empty: 2 dropped (rows with empty text dropped); 0 rows left）；请放宽清洗设置。",
         "Every row was dropped (empty: 2 dropped (rows with empty text dropped); 0 rows left); loosen the "
         "cleaning settings."),
    ])


def test_train_tab_refusals(tmp_path: Path) -> None:
    def classification(rows: str, validation_fraction: float = 0.2) -> WorkbenchError:
        data = written(tmp_path, "train.csv", "text,label\n" + rows)
        config = TrainConfig(task="classification", base=str(tmp_path), data=str(data), text_column="text",
                             label_column="label", validation_fraction=validation_fraction)
        return refusal(lambda: prepare_classification(config))

    check([
        (classification("good,pos\nfine,pos\n"),
         "“label”列的每一行都是同一个标签（“pos”）；分类器至少需要两个类别。",
         "Every row of 'label' has the same label ('pos'); a classifier needs at least two classes."),
        (classification("good,pos\nfine,pos\nbad,neg\n"),
         "标签“neg”只有一个样本；分层划分要求每个标签至少两个样本（请补充样本，或提供验证文件）。",
         "Label 'neg' has only one example; a stratified split needs at least two per label (add examples or give "
         "a validation file)."),
        (classification("good,pos\nfine,pos\nbad,neg\nawful,neg\n", validation_fraction=0.8),
         "4 行数据太少，无法在 2 个标签下划分出训练集和验证集。",
         "4 rows are too few to split into training and validation sets with 2 labels."),
        (classification("good,pos\n ,pos\nbad,neg\n"),
         "“text”列有 1 行为空（第一处：第 2 行）；请删除或补全这些行。",
         "1 row(s) of 'text' are empty (first: row 2); drop or fill them."),
        (classification("good,pos\nfine, \nbad,neg\n"),
         "“label”列有 1 行没有标签（第一处：第 2 行）。", "1 row(s) of 'label' have no label (first: row 2)."),
    ])


def test_hub_dataset_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # a server folder named like a Hub id
    check([
        (refusal(lambda: check_hub_id("  ")),
         "Hub 数据集 ID 为空；请填写类似“someone/reviews”的 ID。",
         "The Hub dataset id is empty; give one like 'someone/reviews'."),
        (refusal(lambda: check_hub_id("../../etc")),
         "“../../etc”不是 Hub 数据集 ID；请按“所有者/名称”填写（例如“stanfordnlp/imdb”）。这里不能读取服务器上的文件夹或文件：请改为上传文件。",
         "'../../etc' is not a Hub dataset id; give one as owner/name (e.g. 'stanfordnlp/imdb'). Server folders "
         "and files cannot be read from here: upload a file instead."),
        (refusal(lambda: check_hub_id("someone/reviews", split="test; rm")),
         "“test; rm”不是有效的划分名称（只能用字母、数字、- _ .）。", "'test; rm' is not a valid split name (letters, digits, - _ .)."),
        (refusal(lambda: check_hub_id("owner/name")),
         "“owner/name”是服务器上的一个文件夹名，不会被读取；请改为上传文件。",
         "'owner/name' names a folder on the server; it is not read. Upload the data as a file instead."),
    ])


def test_a_runs_refusal_in_the_training_process_is_worded_from_its_code(registry, tmp_path: Path) -> None:
    """The training process refuses one-class data; metrics.json keeps the error's code and params, so the Train
    tab words the failed run in the browser's language (the message alone would stay English)."""
    from backend.training import runfiles, worker
    from backend.training.config import save_train_config
    from backend.training.runs import TrainingRuns
    from backend.training.service import TrainingService

    service = TrainingService(registry, root=tmp_path / "runs")
    try:
        base, spec = service.resolve_base("tiny-classifier", "classification")
    finally:
        service.close()
    data = written(tmp_path, "train.csv", "text,label\ngood,pos\nfine,pos\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = TrainConfig(task="classification", base=base, base_id=spec.id, data=str(data), text_column="text",
                         label_column="label", method="full", max_length=16)
    save_train_config(config, run_dir / runfiles.CONFIG)
    assert worker.main(["--config", str(run_dir / runfiles.CONFIG)]) == 1
    info = TrainingRuns().info(run_dir)
    failure = info.failure()
    assert info.status == "failed" and failure is not None and failure.code == "one_class"
    assert str(failure) == info.reason  # the CLI and the API keep the English message
    assert worded(failure, CHINESE) == "“label”列的每一行都是同一个标签（“pos”）；分类器至少需要两个类别。"
    assert worded(failure) == "Every row of 'label' has the same label ('pos'); a classifier needs at least two classes."

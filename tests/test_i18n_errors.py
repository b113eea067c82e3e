"""The tasks' bad-input errors (issue 18) and the upload limits' refusals (issue 15) in Chinese for a Chinese
browser: each message is produced by the real backend code (files written to tmp_path, the tiny models), so a
reworded backend message that the Chinese table no longer knows fails here instead of showing English."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from backend.data.feedback import save_feedback_dataset
from backend.data.recipe import Recipe, parse_fractions
from backend.data.store import check_name
from backend.datafiles import read_table
from backend.evaluation.data import DataSource, check_hub_id
from backend.table_limits import TableLimits
from backend.tasks import service
from backend.training.config import TrainConfig
from backend.training.data import prepare_classification
from backend.tasks.catalog import pair_error
from backend.tasks.files import run_table
from backend.types import InvalidInputError
from ui.i18n_errors import chinese_error


def refusal(action: Callable[[], object]) -> str:
    with pytest.raises(InvalidInputError) as error:
        action()
    return str(error.value)


def written(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_upload_refusals_are_said_in_chinese(tmp_path: Path) -> None:
    rows = written(tmp_path, "rows.csv", "text,label\n" + "".join(f"row {n},a\n" for n in range(5)))
    parquet = tmp_path / "wide.parquet"
    pd.DataFrame({"text": ["word " * 40] * 50}).to_parquet(parquet)
    cases = {
        refusal(lambda: read_table(written(tmp_path, "empty.csv", ""))): "文件“empty.csv”是空的。",
        refusal(lambda: read_table(written(tmp_path, "blank.csv", "  \n"))): "文件“blank.csv”是空的。",
        refusal(lambda: read_table(written(tmp_path, "head.csv", "text,label\n"))): "文件“head.csv”只有表头，没有数据行。",
        refusal(lambda: read_table(rows, max_bytes=10)): "文件“rows.csv”大小为 0.0 MB，上限为 0 MB。请拆分成较小的文件。",
        refusal(lambda: read_table(rows, max_rows=2)): "文件“rows.csv”有 5 行，上限为 2 行。请拆分成较小的文件。",
        refusal(lambda: read_table(rows, limits=TableLimits(max_columns=1))):
            "文件“rows.csv”有 2 列，上限为 1 列。请只保留需要的列。",
        refusal(lambda: read_table(rows, limits=TableLimits(max_cell_chars=3))):
            "文件“rows.csv”的“text”列中有一个单元格含 5 个字符，每个单元格最多 3 个。请缩短或拆分这段文本。",
        refusal(lambda: read_table(parquet, limits=TableLimits(max_table_bytes=1000))):
            "文件“wide.parquet”解码后有 0 MB 文本，上限为 0 MB。请拆分成较小的文件。",
    }
    for message, chinese in cases.items():
        assert chinese_error(message) == chinese, message


def test_task_bad_input_is_said_in_chinese(registry) -> None:
    blank = pd.DataFrame({"text": ["", "  "]})
    cases = {
        refusal(lambda: service.answer_question(registry, "tiny-qa", "Where is it?", "   ")): "请粘贴答案所在的上下文文本。",
        refusal(lambda: service.fill_masks(registry, "tiny-mlm", "No mask here.")):
            "文本中没有掩码标记；请在要预测的词的位置写上 [MASK]（此模型的掩码标记）。",
        refusal(lambda: run_table(registry, "tiny-embed", "embed", blank, "text")):
            "“text”列在每一行都是空的；请选择包含文本的列。",
        str(pair_error([("en", "de"), ("en", "fr")], "en", "ja")): "此模型不能把 en 翻译成 ja；它支持：en → de, en → fr。",
        "target_language: say which language to translate into": "请选择要翻译成的语言。",
    }
    for message, chinese in cases.items():
        assert chinese_error(message) == chinese, message
    many = "The [MASK] " * 11
    assert chinese_error(refusal(lambda: service.fill_masks(registry, "tiny-mlm", many))) == \
        "文本中有 11 个掩码标记，最多 10 个。"


def test_data_tab_refusals_are_said_in_chinese(tmp_path: Path) -> None:
    source = DataSource(path=str(tmp_path / "rows.csv"))
    cases = {
        refusal(lambda: Recipe(source, text_column="").validated()): "请选择包含文本的列。",
        refusal(lambda: Recipe(source, text_column="text", label_column="text").validated()): "标签列不能与文本列相同。",
        refusal(lambda: Recipe(source, text_column="text", split=(0.5, 0.2, 0.2)).validated()):
            "划分比例之和必须为 1，且训练集比例大于 0（当前为 0.5, 0.2, 0.2）。",
        refusal(lambda: parse_fractions("most,some")): "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 'most,some'）。",
        refusal(lambda: parse_fractions("1")): "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 '1'）。",
        refusal(lambda: check_name("../up")): "“../up”不是有效的数据集名称；请只用字母、数字、“.”、“_”和“-”（最多 64 个字符，以字母或数字开头）。",
        refusal(lambda: save_feedback_dataset("ann", "liked", "sft", root=tmp_path)):
            "还没有被点赞的回复；请先在聊天中用大拇指按钮为回复评分。",
        # Raised deep in a job (a saved name, a recipe that drops everything): their wording as the code has it.
        "name: a dataset named 'reviews' exists already; pick another name": "已有名为“reviews”的数据集；请换一个名称。",
        "clean: every row was dropped (empty: -3); loosen the cleaning settings": "清洗后没有剩下任何行（empty: -3）；请放宽清洗设置。",
    }
    for message, chinese in cases.items():
        assert chinese_error(message) == chinese, message


def test_train_tab_refusals_are_said_in_chinese(tmp_path: Path) -> None:
    def classification(rows: str, validation_fraction: float = 0.2) -> str:
        data = written(tmp_path, "train.csv", "text,label\n" + rows)
        config = TrainConfig(task="classification", base=str(tmp_path), data=str(data), text_column="text",
                             label_column="label", validation_fraction=validation_fraction)
        return refusal(lambda: prepare_classification(config))

    cases = {
        classification("good,pos\nfine,pos\n"): "“label”列的每一行都是同一个标签（“pos”）；分类器至少需要两个类别。",
        classification("good,pos\nfine,pos\nbad,neg\n"):
            "标签“neg”只有一个样本；分层划分要求每个标签至少两个样本（请补充样本，或提供验证文件）。",
        classification("good,pos\nfine,pos\nbad,neg\nawful,neg\n", validation_fraction=0.8):
            "4 行数据太少，无法在 2 个标签下划分出训练集和验证集。",
        classification("good,pos\n ,pos\nbad,neg\n"): "“text”列有 1 行为空（第一处：第 2 行）；请删除或补全这些行。",
        classification("good,pos\nfine, \nbad,neg\n"): "“label”列有 1 行没有标签（第一处：第 2 行）。",
        # The Train tab's own checks (ui/train.py).
        "data: upload a training file or pick a saved dataset first": "请先上传训练文件，或选择一个已保存的数据集。",
        "base: pick a base model": "请选择一个基础模型。",
        "run: start a run or open one from the table first": "请先启动一次训练，或从表格中打开一次运行。",
        # Raised where this machine cannot reach them (a CUDA check, a registry, a model's tokenizer).
        "field 'method': qlora (4-bit) needs a CUDA GPU; use lora or full here":
            "QLoRA（4 位）需要 CUDA GPU；在这里请使用 LoRA 或全参数训练。",
        "field 'register_as': the registry already has a model 'tiny-chat'": "注册表中已有名为“tiny-chat”的模型；请换一个名称。",
        "field 'base': /models/gpt2 has no chat template; SFT formats conversations with the model's own template "
        "(pick a chat model)": "基础模型没有对话模板；SFT 需要用模型自己的模板格式化对话（请选择一个聊天模型）。",
    }
    for message, chinese in cases.items():
        assert chinese_error(message) == chinese, message


def test_hub_dataset_refusals_are_said_in_chinese(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # a server folder named like a Hub id
    cases = {
        refusal(lambda: check_hub_id("  ")): "Hub 数据集 ID 为空；请填写类似“someone/reviews”的 ID。",
        refusal(lambda: check_hub_id("../../etc")): "“../../etc”不是 Hub 数据集 ID；请按“所有者/名称”填写（例如“stanfordnlp/imdb”）。"
                                                    "这里不能读取服务器上的文件夹或文件：请改为上传文件。",
        refusal(lambda: check_hub_id("someone/reviews", split="test; rm")): "“test; rm”不是有效的划分名称（只能用字母、数字、- _ .）。",
        refusal(lambda: check_hub_id("owner/name")): "“owner/name”是服务器上的一个文件夹名，不会被读取；请改为上传文件。",
        "data: the Hub dataset 'someone/reviews' cannot be reached offline (HF_HUB_OFFLINE is set) and is not in the "
        "local cache (no files). Download it on a connected machine, or export it to a CSV / JSONL / Parquet file "
        "and pass that instead": "Hub 数据集“someone/reviews”在离线模式下无法访问，本地缓存中也没有；请在联网的机器上下载它，"
                                 "或导出为 CSV / JSONL / Parquet 文件后上传。",
    }
    for message, chinese in cases.items():
        assert chinese_error(message) == chinese, message

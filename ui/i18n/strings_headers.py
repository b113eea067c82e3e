"""The translation table, part 5 (ui/i18n/core.py merges the parts): the column headers of the tables the app makes.

Gradio's Dataframe shows headers as they are (it translates no i18n marker in them), so these are worded on the
server in the request's language (`ui.i18n.core.headed`). Each English text is exactly today's column name: code and
tests that read a table by column name see it unchanged in English. Only tables the app names are translated; a
user's own data columns never are, and frames that feed a plot keep their names (the plot's x / y name them).
key -> (English, Simplified Chinese).
"""

from __future__ import annotations

STRINGS: dict[str, tuple[str, str]] = {
    # Models
    "col_id": ("id", "ID"),
    "col_state": ("state", "状态"),
    "col_tasks": ("tasks", "任务"),
    "col_weights": ("weights", "权重"),
    "col_device": ("device", "设备"),
    "col_dtype": ("dtype", "数据类型"),
    "col_parameters": ("parameters", "参数量"),
    "col_memory": ("memory", "内存"),
    "col_load_time": ("load time", "加载耗时"),
    "col_generated_tokens": ("generated tokens", "已生成 token"),
    "col_last_error": ("last error", "最近错误"),
    "col_owner": ("owner", "所有者"),
    # Train runs, Evaluate runs
    "col_run": ("run", "运行"),
    "col_status": ("status", "状态"),
    "col_task": ("task", "任务"),
    "col_base": ("base", "基础模型"),
    "col_step": ("step", "步数"),
    "col_accuracy_eval_loss": ("accuracy / eval loss", "准确率 / 验证损失"),
    "col_registered_as": ("registered as", "注册名称"),
    "col_reason": ("reason", "原因"),
    "col_created": ("created", "创建时间"),
    "col_data": ("data", "数据"),
    "col_models": ("models", "模型"),
    "col_main_metric": ("main metric", "主要指标"),
    # Evaluate results
    "col_model": ("model", "模型"),
    "col_n": ("n", "样本数"),
    "col_seconds": ("seconds", "秒"),
    "col_label": ("label", "标签"),
    "col_precision": ("precision", "精确率"),
    "col_recall": ("recall", "召回率"),
    "col_support": ("support", "样本数"),
    "col_row": ("row", "行"),
    "col_input": ("input", "输入"),
    "col_reference": ("reference", "参考答案"),
    "col_prediction": ("prediction", "预测"),
    "col_correct": ("correct", "正确"),
    "col_confidence": ("confidence", "置信度"),
    # Task results (NER, question answering, fill-mask, embeddings, classification)
    "col_entity": ("entity", "实体"),
    "col_text": ("text", "文本"),
    "col_score": ("score", "分数"),
    "col_start": ("start", "起始"),
    "col_end": ("end", "结束"),
    "col_answer": ("answer", "答案"),
    "col_mask": ("mask", "掩码"),
    "col_candidate": ("candidate", "候选词"),
    "col_probability": ("probability", "概率"),
    "col_predicted_label": ("predicted_label", "预测标签"),
    "col_predicted_score": ("predicted_score", "预测分数"),
    # Columns a task's file run adds (each task spec's `columns`, backend/tasks/; "answer", "prediction" are above)
    "col_entities": ("entities", "实体"),
    "col_answer_score": ("answer_score", "答案分数"),
    "col_answer_start": ("answer_start", "答案起始"),
    "col_answer_end": ("answer_end", "答案结束"),
    "col_predictions": ("predictions", "候选预测"),
    "col_summary": ("summary", "摘要"),
    "col_translation": ("translation", "译文"),
    "col_embedding": ("embedding", "向量"),
    # Data: the columns summary, saved datasets
    "col_column": ("column", "列"),
    "col_type": ("type", "类型"),
    "col_empty": ("empty", "空值"),
    "col_duplicates": ("duplicates", "重复"),
    "col_unique": ("unique", "不同值"),
    "col_name": ("name", "名称"),
    "col_kind": ("kind", "类型"),
    "col_rows": ("rows", "行数"),
}

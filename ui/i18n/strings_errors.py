"""The translation table, part 4 (ui/i18n/core.py merges the parts): how the UI words a backend error, by its code.

Key "err_" + the error's code (backend/core/error_codes.py), or "err_" + code + "__" + field for a field worded apart
(an empty message reads "Type a message first."). Each template is `str.format` over the error's params, plus
`field` (the field's name as the UI calls it: the "field_" entries below) and what ui/i18n/error_words.py derives for a
few codes. The English column is what an English browser reads, the Chinese column what a Chinese one reads; a
test checks that every code the backend can raise has both.
"""

from __future__ import annotations

STRINGS: dict[str, tuple[str, str]] = {
    # field names, as the Chinese messages call them (keys: "field_" + the backend's field name)
    "field_message": ("Your message", "消息"),
    "field_prompt": ("The text", "文本"),
    "field_text": ("The text", "文本"),
    "field_system_prompt": ("The system prompt", "系统提示词"),
    "field_max_new_tokens": ("Max new tokens", "最大新 token 数"),
    "field_max_tokens": ("Max new tokens", "最大新 token 数"),
    "field_max new tokens": ("Max new tokens", "最大新 token 数"),
    "field_temperature": ("Temperature", "温度"),
    "field_top_p": ("Top p", "Top p"),
    "field_top_k": ("Top k", "Top k"),
    "field_repetition_penalty": ("Repetition penalty", "重复惩罚"),
    "field_seed": ("Seed", "随机种子"),
    "field_stop": ("Stop sequences", "停止序列"),
    "field_model": ("Model", "模型"),
    "field_history": ("The conversation", "对话"),
    "field_history_item": ("Message {number} of the conversation", "对话中的第 {number} 条消息"),
    "field_chat-import": ("Import", "导入"),
    "field_logit_bias": ("Logit bias", "Logit 偏置"),
    "field_labels": ("Labels", "标签"),
    "field_question": ("The question", "问题"),
    "field_context": ("The context", "上下文"),
    "field_batch size": ("Batch size", "批大小"),
    "field_batch_size": ("Batch size", "批大小"),
    "field_sample size": ("Sample size", "样本数"),
    "field_limit": ("Sample size", "样本数"),
    "field_bootstrap resamples": ("Bootstrap resamples", "自助重采样次数"),
    "field_page": ("Page", "页码"),
    "column_input": ("input column", "输入列"),
    "column_reference": ("reference column", "参考列"),
    "column_label": ("label column", "标签列"),
    "column_predictions": ("predictions column", "预测列"),
    "task_classification": ("classification", "分类"),
    "task_generation": ("generation", "生成"),
    "task_perplexity": ("perplexity", "困惑度"),
    # messages
    "err_empty__message": ("Type a message first.", "请先输入消息。"),
    "err_empty__prompt": ("Type some text first.", "请先输入一些文本。"),
    "err_empty": ("{field} is empty; type something first", "{field}为空，请先输入内容。"),
    "err_not_text": ("{field} must be text", "{field}必须是文本。"),
    "err_not_text_type": ("{field} must be text, got {got}", "{field}必须是文本（当前为 {got}）。"),
    "err_item_not_text": ("{field}: content must be text", "{field}：内容必须是文本。"),
    "err_nul": ("{field} contains a NUL character; remove it", "{field}包含 NUL 字符，请删除它。"),
    "err_whole": ("{field} must be a whole number, got {got!r}", "{field}必须是整数（当前为 {got!r}）。"),
    "err_whole_at_least": ("{field} must be a whole number of at least {low}, got {got!r}",
                           "{field}必须是不小于 {low} 的整数（当前为 {got!r}）。"),
    "err_whole_between": ("{field} must be a whole number between {low} and {high}, got {got!r}",
                          "{field}必须是 {low} 到 {high} 之间的整数（当前为 {got!r}）。"),
    "err_number_between": ("{field} must be a number between {low} and {high}, got {got!r}",
                           "{field}必须是 {low} 到 {high} 之间的数字（当前为 {got!r}）。"),
    "err_between": ("{field} must be between {low} and {high}, got {got}",
                    "{field}必须在 {low} 到 {high} 之间（当前为 {got}）。"),
    "err_in_range": ("{field} must be in {range}, got {got}", "{field}必须在 {range} 范围内（当前为 {got}）。"),
    "err_seed": ("Seed: give a whole number >= 0, or leave it blank (-1) for random; got {got!r}",
                 "随机种子：请填写不小于 0 的整数，或留空（-1）表示随机（当前为 {got!r}）。"),
    "err_too_many_stops": ("{field}: at most {most} stop sequences, got {count}",
                           "{field}：最多 {most} 个停止序列（当前为 {count} 个）。"),
    "err_upload_file": ("Upload a CSV, JSONL or Parquet file first.", "请先上传 CSV、JSONL 或 Parquet 文件。"),
    "err_upload_or_hub": ("Upload a CSV, JSONL or Parquet file, or load a Hub dataset, first.",
                          "请先上传 CSV、JSONL 或 Parquet 文件，或加载一个 Hub 数据集。"),
    "err_load_data": ("Load a file or a Hub dataset first.", "请先加载一个文件或 Hub 数据集。"),
    "err_no_file": ("No file received.", "没有收到文件。"),
    "err_pick_models": ("Pick at least one model (or score the predictions already in the file).",
                        "请至少选择一个模型（或者为文件中已有的预测打分）。"),
    "err_no_models": ("Pick at least one model, or give the column that already holds predictions.",
                      "请至少选择一个模型，或者指定已经存放预测结果的列。"),
    "err_pick_predictions": ("Pick the column that holds the predictions to score.", "请选择存放待评分预测结果的列。"),
    "err_needs_column": ("Pick the {column}: {task} needs one. The columns are {columns}.",
                         "请选择{column}：{task}任务需要它。现有的列：{columns}。"),
    "err_same_column": ("The input column and the reference column are both '{name}'; pick a different column for "
                        "each.", "输入列和参考列都是“{name}”；请为两者选择不同的列。"),
    "err_no_column": ("There is no column '{name}'; the columns are {columns}.",
                      "没有名为“{name}”的列；现有的列：{columns}。"),
    "err_no_file_column": ("There is no column '{name}'; the file's columns are {columns}.",
                           "没有名为“{name}”的列；文件中的列：{columns}。"),
    "err_pick_two_runs": ("Pick two saved runs.", "请选择两个已保存的运行。"),
    "err_two_sentences": ("Give at least two sentences, one per line.", "请至少输入两个句子，每行一句。"),
    "err_no_model_for_mode": ("No model in models.yaml does {mode} classification; add one or pick another mode.",
                              "models.yaml 中没有能做 {mode} 分类的模型；请添加一个，或换一种模式。"),
    "err_no_model_for_task": ("No model in models.yaml does this task; add one (see models.yaml).",
                              "models.yaml 中没有能执行此任务的模型；请添加一个，或换一个选项。"),
    "err_type_hub_id": ("Type a Hub dataset id, e.g. 'someone/reviews'.", "请输入 Hub 数据集 ID，例如“someone/reviews”。"),
    "err_numbers_column": ("'{name}' holds numbers, not text; pick the column with the text to classify.",
                           "“{name}”列存放的是数字而不是文本；请选择包含待分类文本的列。"),
    "err_no_text_column": ("'{name}' has no text column; classification needs a column of text.",
                           "“{name}”没有文本列（每一列都是数字或为空）；分类需要一列文本。"),
    "err_may_not_train": ("This account may not start training (an admin lists who may in WORKBENCH_TRAIN_USERS).",
                          "此账号不能启动训练（管理员在 WORKBENCH_TRAIN_USERS 中列出可以训练的用户）。"),
    "err_no_saved_dataset": ("There is no saved dataset named '{name}'.", "没有名为“{name}”的已保存数据集。"),
    # the tasks' bad input (issue 18) and the upload limits (issue 15)
    "err_no_context": ("Paste the text the answer should come from.", "请粘贴答案所在的上下文文本。"),
    "err_no_mask": ("Put {token} where a word should be predicted (this model's mask token).",
                    "文本中没有掩码标记；请在要预测的词的位置写上 {token}（此模型的掩码标记）。"),
    "err_too_many_masks": ("{count} mask tokens; at most {most}.", "文本中有 {count} 个掩码标记，最多 {most} 个。"),
    "err_no_target_language": ("Say which language to translate into.", "请选择要翻译成的语言。"),
    "err_language_pair": ("This model does not translate {source} → {target}; it translates {have}.",
                          "此模型不能把 {source} 翻译成 {target}；它支持：{have}。"),
    "err_empty_file": ("'{name}' is empty.", "文件“{name}”是空的。"),
    "err_blank_file": ("'{name}' is empty (only blank space).", "文件“{name}”是空的。"),
    "err_headless_file": ("'{name}' is empty (no header row).", "文件“{name}”是空的。"),
    "err_header_only": ("'{name}' has a header but no rows.", "文件“{name}”只有表头，没有数据行。"),
    "err_file_too_big": ("'{name}' is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB. Split it into smaller files.",
                         "文件“{name}”大小为 {size_mb:.1f} MB，上限为 {limit_mb:.0f} MB。请拆分成较小的文件。"),
    "err_too_many_rows": ("'{name}' has {count:,} rows; the limit is {limit:,}. Split it into smaller files.",
                          "文件“{name}”有 {count:,} 行，上限为 {limit:,} 行。请拆分成较小的文件。"),
    "err_too_many_columns": ("'{name}' has {count:,} columns; the limit is {limit:,}. Keep only the columns you need.",
                             "文件“{name}”有 {count:,} 列，上限为 {limit:,} 列。请只保留需要的列。"),
    "err_cell_too_long": ("'{name}': a cell of column '{column}' holds {count:,} characters; the limit is {limit:,}. "
                          "Shorten or split that text.",
                          "文件“{name}”的“{column}”列中有一个单元格含 {count:,} 个字符，每个单元格最多 {limit:,} 个。"
                          "请缩短或拆分这段文本。"),
    "err_expands": ("'{name}' expands to {size_mb:,.0f} MB of text once decoded; the limit is {limit_mb:,.0f} MB. Split it into "
                    "smaller files.", "文件“{name}”解码后有 {size_mb:,.0f} MB 文本，上限为 {limit_mb:,.0f} MB。请拆分成较小的文件。"),
    "err_empty_column": ("The column '{name}' is empty in every row; pick the column that holds the text.",
                         "“{name}”列在每一行都是空的；请选择包含文本的列。"),
    # the Data tab's recipe and saves
    "err_name_text_column": ("Pick the column that holds the text.", "请选择包含文本的列。"),
    "err_label_is_text": ("The label column must differ from the text column.", "标签列不能与文本列相同。"),
    "err_split_sum": ("The split fractions must add up to 1 with a training part, got {got}.",
                      "划分比例之和必须为 1，且训练集比例大于 0（当前为 {got}）。"),
    "err_split_form": ("Write the split as fractions like 0.8,0.1,0.1, got {got!r}.",
                       "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 {got!r}）。"),
    "err_split_count": ("Write the split as two or three fractions like 0.8,0.1,0.1, got {got!r}.",
                        "划分比例请写成 0.8,0.1,0.1 这样的形式（当前为 {got!r}）。"),
    "err_dataset_exists": ("A dataset named '{name}' exists already; pick another name.",
                           "已有名为“{name}”的数据集；请换一个名称。"),
    "err_dataset_name": ("'{name}' is not a valid dataset name; use letters, digits, '.', '_' and '-' (at most 64 characters, starting with a letter or digit).",
                         "“{name}”不是有效的数据集名称；请只用字母、数字、“.”、“_”和“-”（最多 64 个字符，以字母或数字开头）。"),
    "err_all_dropped": ("Every row was dropped ({why}); loosen the cleaning settings.",
                        "清洗后没有剩下任何行（{why}）；请放宽清洗设置。"),
    "err_nothing_rated": ("No reply is rated up yet; rate replies in Chat with the thumbs.",
                          "还没有被点赞的回复；请先在聊天中用大拇指按钮为回复评分。"),
    # the Train tab (backend/training/)
    "err_one_class": ("Every row of '{column}' has the same label ('{label}'); a classifier needs at least two "
                      "classes.", "“{column}”列的每一行都是同一个标签（“{label}”）；分类器至少需要两个类别。"),
    "err_label_once": ("Label '{label}' has only one example; a stratified split needs at least two per label (add examples or give a validation file).",
                       "标签“{label}”只有一个样本；分层划分要求每个标签至少两个样本（请补充样本，或提供验证文件）。"),
    "err_too_few_rows": ("{rows} rows are too few to split into training and validation sets with {labels} labels.",
                         "{rows} 行数据太少，无法在 {labels} 个标签下划分出训练集和验证集。"),
    "err_blank_texts": ("{count} row(s) of '{column}' are empty (first: row {row}); drop or fill them.",
                        "“{column}”列有 {count} 行为空（第一处：第 {row} 行）；请删除或补全这些行。"),
    "err_blank_labels": ("{count} row(s) of '{column}' have no label (first: row {row}).",
                         "“{column}”列有 {count} 行没有标签（第一处：第 {row} 行）。"),
    "err_qlora_gpu": ("QLoRA (4-bit) needs a CUDA GPU; use LoRA or full here.",
                      "QLoRA（4 位）需要 CUDA GPU；在这里请使用 LoRA 或全参数训练。"),
    "err_register_taken": ("The registry already has a model '{name}'.", "注册表中已有名为“{name}”的模型；请换一个名称。"),
    "err_no_chat_template": ("The base model has no chat template; SFT formats conversations with the model's own template (pick a chat model).",
                             "基础模型没有对话模板；SFT 需要用模型自己的模板格式化对话（请选择一个聊天模型）。"),
    "err_pick_training_data": ("Upload a training file or pick a saved dataset first.",
                               "请先上传训练文件，或选择一个已保存的数据集。"),
    "err_pick_base": ("Pick a base model.", "请选择一个基础模型。"),
    "err_pick_run": ("Start a run or open one from the table first.", "请先启动一次训练，或从表格中打开一次运行。"),
    # the Evaluate tab's Hub dataset field (backend/evaluation/data.py)
    "err_hub_id_empty": ("The Hub dataset id is empty; give one like 'someone/reviews'.",
                         "Hub 数据集 ID 为空；请填写类似“someone/reviews”的 ID。"),
    "err_not_hub_id": ("'{name}' is not a Hub dataset id; give one as owner/name (e.g. 'stanfordnlp/imdb'). Server folders and files cannot be read from here: upload a file instead.",
                       "“{name}”不是 Hub 数据集 ID；请按“所有者/名称”填写（例如“stanfordnlp/imdb”）。"
                       "这里不能读取服务器上的文件夹或文件：请改为上传文件。"),
    "err_hub_name": ("'{name}' is not a valid {role} name (letters, digits, - _ .).", "“{name}”不是有效的{role}名称（只能用字母、数字、- _ .）。"),
    "err_server_folder": ("'{name}' names a folder on the server; it is not read. Upload the data as a file instead.",
                          "“{name}”是服务器上的一个文件夹名，不会被读取；请改为上传文件。"),
    "err_hub_offline": ("The Hub dataset '{name}' cannot be reached offline and is not in the local cache. Download it on a connected machine, or export it to a CSV / JSONL / Parquet file and upload that.",
                        "Hub 数据集“{name}”在离线模式下无法访问，本地缓存中也没有；请在联网的机器上下载它，"
                        "或导出为 CSV / JSONL / Parquet 文件后上传。"),
    # a choice component's refusal of a value it does not offer (ui/server/guards.py)
    "err_out_taken": ("{path} already exists and is not an empty folder; give a new folder, or resume the run there.",
                      "{path} 已存在且不是空文件夹；请换一个新文件夹，或继续那里的训练。"),
    "err_rating_too_large": ("This rating takes {size:,} bytes, over the limit of {limit:,}; rate a shorter "
                             "conversation.", "这条评分有 {size:,} 字节，超过了每条 {limit:,} 字节的上限；请对更短的对话评分。"),
    "err_ratings_count": ("You have {limit:,} ratings, the most one user keeps; take some back or save them as a "
                          "dataset first.", "您已有 {limit:,} 条评分，达到每位用户的上限；请先撤回一些，或先保存为数据集。"),
    "err_ratings_bytes": ("Your ratings take {used_mb:.1f} MB, the most one user keeps is {limit_mb:g} MB; take some "
                          "back first.", "您的评分占用 {used_mb:.1f} MB，每位用户最多 {limit_mb:g} MB；请先撤回一些。"),
    # the arena's votes (backend/data/votes.py)
    "err_arena_sides": ("An arena round has {low} to {high} sides.", "一轮竞技场对比有 {low} 到 {high} 个模型。"),
    "err_arena_outcome": ("'{got}' is not an outcome of this round; one of {allowed}.",
                          "“{got}”不是本轮的有效结果；可选：{allowed}。"),
    "err_vote_too_large": ("This vote takes {size:,} bytes, over the limit of {limit:,}; start a new round with "
                           "shorter conversations.", "这次投票有 {size:,} 字节，超过了每票 {limit:,} 字节的上限；请用更短的对话开始新一轮。"),
    "err_votes_count": ("You have {limit:,} votes, the most one user keeps.", "您已有 {limit:,} 票，达到每位用户的上限。"),
    "err_votes_bytes": ("Your votes take {used_mb:.1f} MB, the most one user keeps is {limit_mb:g} MB.",
                        "您的投票占用 {used_mb:.1f} MB，每位用户最多 {limit_mb:g} MB。"),
    "err_arena_nothing": ("There are no replies to vote on yet; send a message first.", "还没有可投票的回复；请先发送一条消息。"),
    "err_arena_voted": ("This round has its vote; send a message to start a new round.",
                        "本轮已经投过票；发送一条消息即可开始新一轮。"),
    "err_arena_busy": ("The replies are still coming; wait for them (or stop them) first.",
                       "回复仍在生成中；请先等待完成（或停止它们）。"),
    "err_no_vote_pairs": ("None of your {votes:,} arena vote(s) picked a best reply (ties and all-bad votes make no "
                          "pair); vote in Compare's blind arena first.",
                          "您的 {votes:,} 次竞技场投票中没有选出最佳回复的（平局和都不好不构成偏好对）；"
                          "请先在“对比”页的盲测竞技场中投票。"),
    "err_not_a_choice": ("{field}: '{value}' is not one of the choices", "{field}：“{value}”不是可选项之一"),
    "choice_field": ("this field", "此字段"),
    "role_config": ("config", "配置"),
    "role_split": ("split", "划分"),
    "err_text_too_long": ("{field} is {count:,} characters; the limit is {limit:,}. Shorten it or split it up.",
                          "{field}有 {count:,} 个字符，上限为 {limit:,} 个。请缩短或拆分。"),
    # evaluation with a conversation, the judge and pairwise comparison (backend/evaluation/)
    "err_eval_conversation": ("Row {row} of '{column}' is not a conversation ({reason}); give a list of role / content "
                              "messages.", "“{column}”的第 {row} 行不是对话（{reason}）；请提供由 role / content 组成的消息列表。"),
    "err_eval_conversation_empty": ("No row of '{column}' has both a user turn to answer and a reference.",
                                    "“{column}”中没有同时包含待回答的用户轮次和参考答案的行。"),
    "err_conversation_task": ("A conversation column applies to generation, not {task}.",
                              "对话列只适用于生成任务，不适用于 {task}。"),
    "err_conversation_needs_chat": ("Model '{model}' has no chat template, and rows with a conversation need one; "
                                    "pick a chat model or drop the conversation column.",
                                    "模型“{model}”没有对话模板，而带对话的行需要它；请选择对话模型，或去掉对话列。"),
    "err_judge_is_candidate": ("'{model}' is also being evaluated; pick a different model as the judge.",
                               "“{model}”也在被评测；请选择另一个模型作为评审。"),
    "err_judge_rubric_slots": ("The rubric must contain {slots}; it lacks {missing}.",
                               "评分标准必须包含 {slots}；缺少 {missing}。"),
    "err_pairwise_two_models": ("A pairwise comparison needs exactly two models, got {count}.",
                                "成对比较需要恰好两个模型，当前为 {count} 个。"),
    "err_no_base_model": ("No base model is recorded for '{model}' (only fine-tuned models know their base); pick "
                          "the second model yourself.", "没有记录“{model}”的基础模型（只有微调得到的模型知道其基础模型）；"
                          "请自行选择第二个模型。"),
    # publishing a finished run (the Train tab's Publish panel)
    "err_run_not_finished": ("Run {run} has no finished model to publish (status: {status}); wait until it has "
                             "completed.", "运行 {run} 还没有可发布的完成模型（状态：{status}）；请等它完成。"),
    "err_merge_not_adapter": ("Run {run} saved a full model, not a LoRA adapter: there is nothing to merge. Download "
                              "or push it as it is.", "运行 {run} 保存的是完整模型而不是 LoRA 适配器：无需合并。"
                              "请直接下载或推送。"),
    "err_not_merged": ("Run {run} has no merged model yet; merge it first.", "运行 {run} 还没有合并后的模型；请先合并。"),
    "err_hub_repo_id": ("'{repo}' is not a Hub repository id; give one as owner/name (e.g. 'alice/my-model').",
                        "“{repo}”不是 Hub 仓库 ID；请按“所有者/名称”填写（例如“alice/my-model”）。"),
    "err_hub_push_offline": ("HF_HUB_OFFLINE is set, so nothing is sent to the Hugging Face Hub. Download the zip "
                             "and upload it from a connected machine, or unset HF_HUB_OFFLINE.",
                             "已设置 HF_HUB_OFFLINE，不会向 Hugging Face Hub 发送任何内容。请下载 zip 后在联网的机器上"
                             "上传，或取消 HF_HUB_OFFLINE。"),
    "err_hub_push_no_token": ("No Hugging Face token: set HF_TOKEN (a token with write access) in the app's "
                              "environment.", "没有 Hugging Face 令牌：请在应用的环境变量中设置 HF_TOKEN（需有写权限）。"),
    "err_hub_push_unreachable": ("The Hugging Face Hub at {endpoint} cannot be reached ({why}); this machine seems to "
                                 "be offline. Download the zip and upload it from a connected machine.",
                                 "无法连接 Hugging Face Hub（{endpoint}）（{why}）；这台机器似乎处于离线状态。"
                                 "请下载 zip 后在联网的机器上上传。"),
    "err_hub_push_failed": ("The Hub refused the upload to {repo} ({why}); check the token's write access and the "
                            "repository name.", "Hub 拒绝了向 {repo} 的上传（{why}）；请检查令牌的写权限和仓库名称。"),
    # ------------------------------------------------------------------------- issue 28 (Train, Generate)
    "err_train_start_twice": ("A run was just started from this page; this second start was ignored (a double click?).",
                              "此页面刚刚开始了一次训练；这第二次开始已被忽略（是否双击了？）。"),
    "err_grammar_too_complex": ("This JSON Schema is too complex to follow while decoding (it took {seconds} CPU-s to prepare; the limit is {limit} s). Simplify it: fewer optional properties, alternatives or number ranges.",
                                "这个 JSON Schema 过于复杂，解码时难以遵循（准备用了 {seconds} CPU 秒，上限为 {limit} 秒）。请简化：减少可选属性、备选项或数值范围。"),
    "err_register_taken_meanwhile": ("Finished, not registered: the name '{name}' was taken meanwhile; register it under another name.",
                                     "已完成，但未注册：名称“{name}”在训练期间已被占用；请用另一个名称注册。"),
    # ------------------------------------------------------------------------- issue 25 (compare with base)
    "err_compare_run_unfinished": ("Run {run} has no finished model to compare (status: {status}); wait until it "
                                   "has completed.", "运行 {run} 还没有可对比的完成模型（状态：{status}）；请等它完成。"),
    "err_compare_run_unregistered": ("Run {run} has no registered model to compare; only a completed run that "
                                     "registered its model can be compared with its base.",
                                     "运行 {run} 没有已注册的模型可供对比；只有完成并注册了模型的运行才能与基础模型对比。"),
    "err_compare_labels_differ": ("The classifier of run {run} has the labels {labels}, its base '{base}' has "
                                  "{base_labels}: comparing them makes no sense. Evaluate the run's model alone.",
                                  "运行 {run} 的分类器标签为 {labels}，其基础模型 '{base}' 的标签为 {base_labels}："
                                  "二者对比没有意义。请单独评估该运行的模型。"),
}

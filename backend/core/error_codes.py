"""The errors the UI words in the browser's language: one English template per code, and `refuse`, which builds
the error (message, code, field, params) from it.

The template is the English message the CLI, the logs and API callers read; the UI words the same error from its
`code` and `params` (ui/i18n/strings_errors.py has the wording of every code below, in English and Chinese; a test
keeps the two tables in step). Templates are `str.format` strings over the params; `{field}` is the field as the
message names it (`shown`, when that differs from the field's name: "history item 2", "context[1]").
"""

from __future__ import annotations

from typing import Mapping, Optional, TypeVar

from backend.core.errors import InvalidInputError, WorkbenchError

E = TypeVar("E", bound=WorkbenchError)

_UPLOAD = "upload a CSV, JSONL or Parquet file"
_SPLIT_IT = "Split it into smaller files"

MESSAGES: dict[str, str] = {
    # a field's value (backend/core/types.py, backend/services/generation.py, ui/common/components.py, the tasks'
    # and evaluation's checks)
    "empty": "{field}: is empty; type something first",
    "not_text": "{field}: must be text",
    "not_text_type": "{field}: must be text, got {got}",
    "item_not_text": "history item {item}: content must be text",
    "nul": "{field}: contains a NUL character; remove it",
    "text_too_long": "{field}: is {count:,} characters; the limit is {limit:,}. Shorten it or split it up",
    "seed": "seed: give a whole number >= 0, or leave it blank (-1) for random; got {got!r}",
    "whole": "{field}: must be a whole number, got {got!r}",
    "whole_at_least": "{field}: must be a whole number of at least {low}, got {got!r}",
    "whole_between": "{field}: must be a whole number between {low} and {high}, got {got!r}",
    "between": "{field}: must be between {low} and {high}, got {got}",
    "number_between": "{field}: must be a number between {low} and {high}, got {got!r}",
    "in_range": "{field}: must be in {range}, got {got}",
    "too_many_stops": "stop: at most {most} stop sequences, got {count}",
    # forms that are not filled in yet (the tabs' own checks, ui/)
    "upload_file": "file: " + _UPLOAD + " first",
    "no_file": "{field}: no file received",
    "upload_or_hub": "data: " + _UPLOAD + ", or load a Hub dataset, first",
    "load_data": "data: load a file or a Hub dataset first",
    "pick_models": "models: pick at least one model (or score the predictions already in the file)",
    "pick_predictions": "predictions column: pick the column that holds the predictions to score",
    "pick_two_runs": "compare: pick two saved runs",
    "two_sentences": "sentences: give at least two sentences, one per line",
    "no_model_for_mode": "model: no model in models.yaml does {mode} classification; add one or pick another mode",
    "no_model_for_task": "model: no model in models.yaml does '{task}'; add one (see models.yaml)",
    "type_hub_id": "Hub dataset: type a dataset id, e.g. 'someone/reviews'",
    "numbers_column": "column: '{name}' holds numbers, not text; pick the column with the text to classify",
    "no_text_column": "file: '{name}' has no text column (every column holds numbers or nothing); classification "
                      "needs a column of text",
    "may_not_train": "training: this account may not start training (an admin lists who may in "
                     "WORKBENCH_TRAIN_USERS)",
    "no_saved_dataset": "there is no saved dataset named '{name}'",
    "pick_training_data": "data: upload a training file or pick a saved dataset first",
    "pick_base": "base: pick a base model",
    "pick_run": "run: start a run or open one from the table first",
    # evaluation (backend/evaluation/)
    "no_models": "models: pick at least one model (--model ID), or give the column that already holds predictions "
                 "(--predictions-column)",
    "needs_column": "{role} column: {task} needs one ({flag}); the columns are {columns}",
    "same_column": "columns: the input column and the reference column are both '{name}'; pick a different column "
                   "for each",
    "no_column": "{field}: there is no column '{name}'; the columns are {columns}",
    "no_file_column": "column: there is no column '{name}'; the file's columns are {columns}",
    "hub_id_empty": "data: the Hub dataset id is empty; give one like 'someone/reviews'",
    "not_hub_id": "data: '{name}' is not a Hub dataset id; give one as owner/name (e.g. 'stanfordnlp/imdb'). "
                  "Server folders and files cannot be read from here: upload a file instead",
    "hub_name": "data: '{name}' is not a valid {role} name (letters, digits, - _ .)",
    "server_folder": "data: '{name}' names a folder on the server, not only a Hub dataset; it is not read. Upload "
                     "the data as a file instead",
    "hub_offline": "data: the Hub dataset '{name}' cannot be reached offline (HF_HUB_OFFLINE is set) and is not in "
                   "the local cache ({reason}). Download it on a connected machine, or export it to a CSV / JSONL / "
                   "Parquet file and pass that instead",
    # the pipeline tasks (backend/tasks/)
    "no_context": "{field}: is empty; paste the text the answer should come from",
    "no_mask": "{field}: has no mask token; put {token} where a word should be predicted (this model's mask token)",
    "too_many_masks": "text: {count} mask tokens; at most {most}",
    "no_target_language": "target_language: say which language to translate into",
    "language_pair": "target_language: this model does not translate {source} → {target}; it translates {have}",
    # uploads and their limits (backend/data/files.py)
    "empty_file": "file: '{name}' is empty",
    "blank_file": "file: '{name}' is empty (only blank space)",
    "headless_file": "file: '{name}' is empty (no header row)",
    "header_only": "file: '{name}' has a header but no rows",
    "file_too_big": "file: '{name}' is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB. " + _SPLIT_IT,
    "too_many_rows": "file: '{name}' has {count:,} rows; the limit is {limit:,}. " + _SPLIT_IT,
    "too_many_columns": "file: '{name}' has {count:,} columns; the limit is {limit:,}. Keep only the columns you need",
    "cell_too_long": "file: '{name}': a cell of column '{column}' holds {count:,} characters; the limit is "
                     "{limit:,} per cell. Shorten or split that text",
    "expands": "file: '{name}' expands to {size_mb:,.0f} MB of text once decoded; the limit is {limit_mb:,.0f} MB. "
               + _SPLIT_IT,
    "empty_column": "column: '{name}' is empty in every row; pick the column that holds the text",
    # the Data tab's recipe and saves (backend/data/)
    "name_text_column": "text_column (--text-column): name the column that holds the text",
    "label_is_text": "label_column (--label-column): must differ from the text column",
    "split_sum": "split (--split): the fractions must add up to 1 with a training part, got {got}",
    "split_form": "split (--split): fractions like 0.8,0.1,0.1, got {got!r}",
    "split_count": "split (--split): two or three fractions like 0.8,0.1,0.1, got {got!r}",
    "dataset_exists": "name: a dataset named '{name}' exists already; pick another name",
    "dataset_name": "name: '{name}' is not a valid dataset name; use letters, digits, '.', '_' and '-' (at most 64, "
                    "starting with a letter or digit)",
    "all_dropped": "clean: every row was dropped ({why}); loosen the cleaning settings",
    "nothing_rated": "feedback: no reply is rated up yet; rate replies in Chat with the thumbs",
    # training (backend/training/)
    "one_class": "field 'label_column': every row of '{column}' has the same label ('{label}'); a classifier needs "
                 "at least two classes",
    "label_once": "field 'label_column': label '{label}' has only one example; a stratified split needs at least two "
                  "per label (add examples or give a validation file)",
    "too_few_rows": "field 'data': {rows} rows are too few to split into training and validation sets with {labels} "
                    "labels",
    "blank_texts": "field 'text_column': {count} row(s) of '{column}' in the {what} file are empty (first: row "
                   "{row}); drop or fill them",
    "blank_labels": "field 'label_column': {count} row(s) of '{column}' in the {what} file have no label (first: row "
                    "{row})",
    "qlora_gpu": "field 'method': qlora (4-bit) needs a CUDA GPU; use lora or full here",
    "register_taken": "field 'register_as': the registry already has a model '{name}'",
    "register_taken_meanwhile": "finished, not registered: the name '{name}' was taken meanwhile; register it under "
                                "another name",
    "no_chat_template": "field 'base': {base} has no chat template; training formats conversations with the "
                        "model's own template (pick a chat model)",
    "out_taken": "out: {path} already exists and is not an empty folder; give a new folder (or resume the run that "
                 "is there)",
    # feedback (backend/data/feedback.py)
    "rating_too_large": "messages: this rating takes {size:,} bytes, over the limit of {limit:,} per rating; rate a "
                        "shorter conversation (or a part of it with `index`)",
    "ratings_count": "feedback: you have {limit:,} ratings, the most one user keeps; take some back or save them as a "
                     "dataset and start afresh",
    "ratings_bytes": "feedback: your ratings take {used_mb:.1f} MB, the most one user keeps is {limit_mb:g} MB; take "
                     "some back first",
    # evaluation with a conversation, the judge and pairwise comparison (backend/evaluation/)
    "eval_conversation": "field 'conversation_column': row {row} of '{column}' is not a conversation ({reason}); "
                         "give a list of {{role, content}} messages, as JSON text or a JSONL list",
    "eval_conversation_empty": "field 'conversation_column': no row of '{column}' has both a user turn to answer "
                               "and a reference; nothing to evaluate",
    "conversation_task": "field 'conversation_column': a conversation column applies to generation, not {task}",
    "conversation_needs_chat": "model '{model}': rows with a conversation go through a chat template, and this "
                               "model has none (pick a chat model, or drop the conversation column)",
    "judge_is_candidate": "judge: '{model}' is also being evaluated; pick a different model as the judge",
    "judge_rubric_slots": "{field}: must contain {slots}, got a rubric without {missing}",
    "pairwise_two_models": "models: a pairwise comparison needs exactly two models, got {count}",
    "no_base_model": "model '{model}': no base model is recorded for it (only fine-tuned models of the Train tab "
                     "know their base); pick the second model yourself",
    # publishing a finished run (backend/training/publish.py, service.merge)
    "run_not_finished": "run: {run} has no finished model to publish (status: {status}); wait until it has completed",
    "merge_not_adapter": "run: {run} saved a full model, not a LoRA adapter; there is nothing to merge (download or "
                         "push it as it is)",
    "not_merged": "merged: run {run} has no merged model yet; merge it first",
    "hub_repo_id": "repo: '{repo}' is not a Hub repository id; give one as owner/name (e.g. 'alice/my-model')",
    "hub_push_offline": "push: HF_HUB_OFFLINE is set, so nothing is sent to the Hugging Face Hub; download the zip "
                        "and upload it from a connected machine, or unset HF_HUB_OFFLINE",
    "hub_push_no_token": "push: no Hugging Face token; set HF_TOKEN (a token with write access) in the environment "
                         "of the app or the command",
    "hub_push_unreachable": "push: the Hugging Face Hub at {endpoint} cannot be reached ({why}); this machine seems "
                            "to be offline: download the zip and upload it from a connected machine",
    "hub_push_failed": "push: the Hub refused the upload to {repo} ({why}); check the token's write access and the "
                       "repository name",
    # issue 28 (ui/train/once.py)
    "train_start_twice": "start: a run was just started from this page; this second start was ignored (a double "
                         "click?)",
    # the arena's votes (backend/data/votes.py)
    "arena_sides": "{field}: an arena round has {low} to {high} sides",
    "arena_outcome": "outcome: {got!r} is not an outcome of this round; one of {allowed}",
    "vote_too_large": "conversations: this vote takes {size:,} bytes, over the limit of {limit:,} per vote; start a "
                      "new round with shorter conversations",
    "votes_count": "votes: you have {limit:,} votes, the most one user keeps",
    "votes_bytes": "votes: your votes take {used_mb:.1f} MB, the most one user keeps is {limit_mb:g} MB",
    "arena_nothing": "vote: there are no replies to vote on yet; send a message first",
    "arena_voted": "vote: this round has its vote; send a message to start a new round",
    "arena_busy": "vote: the replies are still coming; wait for them (or stop them) first",
    "no_vote_pairs": "votes: none of your {votes:,} arena vote(s) picked a best reply (ties and all-bad votes make no "
                     "pair); vote in Compare's blind arena first",
    # structured output (backend/services/structured.py)
    "grammar_too_complex": "{field}: preparing this JSON Schema for decoding took {seconds:g} CPU-s, over the limit "
                           "of {limit:g} s; simplify it (fewer optional properties, alternatives or number ranges)",
    # issue 25: "Compare with base" on a finished run (ui/train/compare_base.py)
    "compare_run_unfinished": "run: {run} has no finished model to compare (status: {status}); wait until it has "
                              "completed",
    "compare_run_unregistered": "run: {run} has no registered model to compare; only a completed run that "
                                "registered its model can be compared with its base",
    "compare_labels_differ": "run: {run}'s classifier has the labels {labels}, its base '{base}' has {base_labels}; "
                             "comparing them makes no sense (evaluate the run's model alone)",
}


def refuse(code: str, field: Optional[str] = None, *, kind: type[E] = InvalidInputError,  # type: ignore[assignment]
           shown: Optional[str] = None, **params: object) -> E:
    """The error `code` about `field`, its English message filled from MESSAGES[code] with `params`.

    `kind` is the error class (InvalidInputError unless said); `shown` is how the message names the field when
    that is not the field's own name. Raise what it returns: `raise refuse("empty", "message")`.
    """
    return kind(_message(code, field, shown, params), code=code, field=field, params=params)


def refuse_as(code: str, field: Optional[str], params: Mapping[str, object],
              shown: Optional[str] = None) -> InvalidInputError:
    """`refuse` with the wording's values as one mapping: for wording an error again from another's `params`
    (`refuse_as(code, field, error.params)`), whose keys are not known here to be free of `kind` and `shown`."""
    return InvalidInputError(_message(code, field, shown, params), code=code, field=field, params=params)


def _message(code: str, field: Optional[str], shown: Optional[str], params: Mapping[str, object]) -> str:
    return MESSAGES[code].format(field=shown if shown is not None else field, **params)

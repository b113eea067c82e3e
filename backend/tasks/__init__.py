"""The pipeline tasks beyond chat and classification: NER, extractive QA, fill-mask, summarization,
translation and embeddings; one module each, listed in one table.

- `base`: the shape of a task: `TaskSpec` (architectures, input checks, file rows, evaluation adapter) and
  `TaskHandler` (preprocess → forward → postprocess, as transformers' Pipeline). Torch-free.
- `table`: the one list of tasks (`task_spec(name)`, `register(spec)`); `catalog` answers config validation's
  questions from it.
- `ner`, `qa`, `fill_mask`, `seq2seq` (summarize and translate), `embed`: one module per task, its spec and its
  handler; torch is imported only inside the functions that load and run a model.
- `service`: what the UI, the API and scripts call (torch-free; validates before any model is touched).
- `files`: a task over every row of a CSV / JSONL / Parquet file, in batches, with progress and cancel.

Adding a task: docs/recipes/task.md.
"""

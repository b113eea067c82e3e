"""The pipeline tasks beyond chat and classification: NER, extractive QA, fill-mask, summarization,
translation and embeddings.

- `catalog`: which checkpoints serve which task (torch-free; config validation uses it).
- `service`: what the UI, the API and scripts call (torch-free; validates before any model is touched).
- `ner`, `qa`, `fill_mask`, `seq2seq`, `embed`: one module per task, each with the preprocess → forward →
  postprocess shape of transformers pipelines; they import torch and are loaded only by the task engine.
- `files`: a task over every row of a CSV / JSONL / Parquet file, in batches, with progress and cancel.
"""

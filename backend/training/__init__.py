"""Fine-tuning: a validated plan (config, data, memory), a training child process, and the runs it leaves.

Only `worker` (the child process) and the functions that tokenize or estimate memory import torch /
transformers, and they do so inside functions: the server imports this package without them.
"""

"""Data preparation: load, inspect, clean, split, augment and save datasets; chat feedback becomes training data.

recipe.py  what to do (validated, reproducible: the card stores it)   clean.py   cleaning steps on `datasets`
split.py   seeded, stratified splits                                   augment.py nlpaug + WordNet + paraphrases
stats.py   column statistics                                           store.py   named datasets per user
pipeline.py the one code path (tab, job process, CLI)                 jobs.py    runs a pipeline in its own process
cli.py     `python app.py data`                                        feedback.py rated chat replies -> datasets
"""

"""Runs where people look for them: every run, comparison and sweep logged to an MLflow tracking store.

store.py: the tracking URI a config asks for, the extra's presence, and a client whose first failure is one
warning and stops tracking, never the run. runs.py: one gru-lab run as one MLflow run (parameters, per-epoch
metrics, test metrics, tags, the run folder's files, the model in MLflow's Keras flavour), resumed runs
continued, finished run folders logged later (backfill) without duplicates, and the parent run of a compare,
sweep or tune with its children nested under it. MLflow is imported only inside these functions, only when a
run is tracked.
"""

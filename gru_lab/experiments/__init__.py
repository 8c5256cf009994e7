"""Many runs of the user's experiments: the shared planning step (planning.py) and table builder (tables.py),
the executor of worker processes (executor.py) and Ray tasks (ray_runner.py), and the experiments themselves:
compare.py (with verdicts.py), sweep.py, and tune.py (its search space in space.py, its Optuna study in
study.py). gru-lab measuring itself (the bench, its PyTorch peer, the GPU check) lives in gru_lab.bench."""

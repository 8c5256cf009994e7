"""CPU ms per train step of the IMDB masked recipe (configs/imdb_gru.yaml: dropout 0.2) on 40 real batches:
the table before this change (b3e4a2d, pairs gathered from E) vs after (tokens gathered once), each with Adam's
fused update, and with Keras's own Adam (before adbe080); plus dropout 0 and the literal recipe's batches.
Usage: GRU_LAB_IMDB=... python dropout_ab.py CELL N_BATCHES REPEATS"""
import os, statistics, subprocess, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import yaml
from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset
from gru_lab.rnn import compiled as native
from gru_lab.training import device, fit, pipeline
from gru_lab.training.optimizers import make_optimizer
from gru_lab.models.build import build_model

cell, n_batches, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = config_from_raw(yaml.safe_load(open("configs/imdb_gru.yaml")), "configs/imdb_gru.yaml")
cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"cell": cell})})
data = load_dataset(cfg.data, cfg.seed)
setup = device.prepare(cfg, data.spec)
trim, bucket = pipeline.batching(cfg.model.mask_zero, data.spec.padding, False, cfg.train.bucketing)
x_fit, y_fit, _, _ = pipeline.split_validation(data.x_train, data.y_train, cfg.train.validation_split)
ds = pipeline.train_dataset(x_fit, y_fit, cfg.train.batch_size, cfg.seed, trim, bucket, epochs=1)
batches = [(x.numpy(), y.numpy()) for x, y in ds.take(n_batches)]
old_ns = {"__name__": "old_compiled", "__file__": os.path.abspath("gru_lab/rnn/compiled.py")}
exec(subprocess.run(["git", "show", "b3e4a2d:gru_lab/rnn/compiled.py"], capture_output=True, text=True, check=True).stdout, old_ns)
old_table = lambda ids, e, w, b, rs=None, lib=None: old_ns["_batch_table"](ids, e, w, b, rs)
new_table = native._batch_table
variants = {"old table, keras adam": (old_table, True, 0.2), "old table, fused adam": (old_table, False, 0.2),
            "new table, fused adam": (new_table, False, 0.2), "no dropout, fused adam": (new_table, False, 0.0),
            "no dropout, keras adam": (new_table, True, 0.0)}
models, times = {}, {v: [] for v in variants}
with device.applied(setup):
    for v, (table, plain, p) in variants.items():
        fit.set_seed(cfg.seed)
        model = build_model(cfg.model.model_copy(update={"dropout": p}), data.spec)
        model.compile(optimizer=make_optimizer(cfg, keras_updates=plain), loss="binary_crossentropy")
        models[v] = model
    for rep in range(repeats + 1):
        for v, (table, plain, p) in variants.items():
            native._batch_table = table
            t0 = time.process_time()
            for x, y in batches:
                models[v].train_on_batch(x, y)
            if rep:
                times[v].append((time.process_time() - t0) / len(batches) * 1e3)
for v in variants:
    print(f"{cell} {v:24s} CPU ms/step median {statistics.median(times[v]):6.1f}  each {' '.join(f'{t:.1f}' for t in times[v])}", flush=True)

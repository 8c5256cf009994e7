"""A/B within one process: a gru-lab train step (the bench's model) with Keras's Adam updates vs the fused update,
alternating, wall and CPU time per step; plus fused+xla. Usage: python adam_ab.py CELL INPUTS UNITS STEPS BATCH"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from gru_lab.bench import sizes as S
from gru_lab.training import optimizers

cell, inputs, units, steps, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
size = S.Size(units, steps, batch)
real_make = optimizers.make_optimizer
results = {}
builds = {}
for name, variant, plain in (("keras-adam", S.GRU_LAB, True), ("fused-adam", S.GRU_LAB, False), ("fused+xla", S.FUSED, False)):
    import gru_lab.training.fit as fit
    fit.make_optimizer = (lambda cfg, keras_updates=False, _p=plain: real_make(cfg, keras_updates=_p))
    train, infer, chain, batched, kernel = S._tf_builder(cell, inputs, size, variant)()
    train(); train()
    builds[name] = train
for rnd in range(5):
    for name, train in builds.items():
        n = 20
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            train()
        results.setdefault(name, []).append(((time.perf_counter() - w) / n * 1000, (time.process_time() - c) / n * 1000))
for name, r in results.items():
    ws, cs = sorted(x[0] for x in r), sorted(x[1] for x in r)
    print(f"{cell} {inputs} {units}/{steps}/{batch} {name:11s} wall ms min {ws[0]:.2f} med {ws[2]:.2f}  cpu ms min {cs[0]:.2f} med {cs[2]:.2f}")

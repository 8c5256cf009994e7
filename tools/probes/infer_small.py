"""Inference at the small real-input sizes where fused+xla beat the compiled loops: predict_on_batch of the bench's
model with the plan's compiled loops and with the fused loop under XLA, with TensorFlow's intra-op pool at its
default and at one thread, and the model's ops under TensorFlow's profiler-free op count.
python infer_small.py CELL UNITS STEPS BATCH [THREADS]; PROBE_OP_THREADS=N: the compiled ops alone on N threads"""
import os, sys
from timing import timed  # tools/probes/timing.py (the script's folder is on sys.path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
cell, units, steps, batch = sys.argv[1], *map(int, sys.argv[2:5])
if len(sys.argv) > 5:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[5]))
from gru_lab.bench import sizes as S

if os.environ.get("PROBE_OP_THREADS"):  # the compiled ops' own block split, alone: their `threads` attribute
    import functools
    from gru_lab.rnn import compiled
    lib = compiled.load()
    for name in dir(lib):
        if name.startswith("gru_lab_") and "gradient" not in name:
            setattr(lib, name, functools.partial(getattr(lib, name), threads=int(os.environ["PROBE_OP_THREADS"])))


size = S.Size(units, steps, batch)
for variant in (S.GRU_LAB, S.FUSED, S.GRU_LAB, S.FUSED):
    train, infer, _, _, kernel = S._tf_builder(cell, "real", size, variant)()
    print(f"{cell} real {units}/{steps}/{batch} {variant:18s} infer {timed(infer, 300):.3f} ms  train {timed(train, 100):.2f} ms  ({kernel()})", flush=True)

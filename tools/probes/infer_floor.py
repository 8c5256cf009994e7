"""Inference's fixed cost per call: predict_on_batch of the bench's model (gru-lab, keras) against a model with
no recurrent layer on the same inputs (the call's own cost), at the 50-step sizes. python infer_floor.py INPUTS"""
import os, sys
from timing import timed  # tools/probes/timing.py (the script's folder is on sys.path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, tensorflow as tf
from gru_lab.bench import sizes as S


inputs = sys.argv[1]
for units, batch in ((32, 16), (128, 16), (32, 128), (128, 128), (512, 16), (512, 128)):
    size = S.Size(units, 50, batch)
    out = {}
    for variant in (S.GRU_LAB, S.KERAS):
        for cell in ("gru",):
            train, infer, *_ = S._tf_builder(cell, inputs, size, variant)()
            out[variant] = timed(infer, 200)
    x, _ = S.point_arrays(inputs, size)
    keras.backend.clear_session()
    if inputs == "tokens":
        m = keras.Sequential([keras.Input((50,), dtype="int32"), keras.layers.Embedding(S.VOCABULARY, 128), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    else:
        m = keras.Sequential([keras.Input((50, S.FEATURES)), keras.layers.Flatten(), keras.layers.Dense(1)])
    xt = tf.constant(x)
    floor = timed(lambda: m.predict_on_batch(xt), 200)
    g, k = out[S.GRU_LAB], out[S.KERAS]
    print(f"gru {inputs} {units}/50/{batch}: gru-lab {g:.2f} ms, keras {k:.2f} ms, ratio {k/g:.2f}x; no-recurrent call {floor:.2f} ms; "
          f"beyond it: gru-lab {g-floor:.2f}, keras {k-floor:.2f}, ratio {(k-floor)/(g-floor):.2f}x", flush=True)

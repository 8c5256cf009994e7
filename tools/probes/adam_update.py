"""Keras 3 Adam on a 10,000 x 128 variable (the IMDB embedding): its own update ops, the same under XLA, and
TensorFlow's fused ResourceApplyAdam; ms per update. Usage: python tools/probes/adam_update.py"""
import time, os
os.environ["TF_CPP_MIN_LOG_LEVEL"]="2"
import numpy as np, tensorflow as tf, keras
v = keras.Variable(np.random.rand(10000,128).astype("float32"))
g = tf.constant(np.random.rand(10000,128).astype("float32"))
for jit in (False, True):
    opt = keras.optimizers.Adam(1e-3)
    opt.build([v])
    @tf.function(jit_compile=jit)
    def step():
        opt.apply([g],[v])
    step(); step()
    t=time.perf_counter(); n=200
    for _ in range(n): step()
    print("keras adam jit" if jit else "keras adam", (time.perf_counter()-t)/n*1000, "ms")
m = tf.Variable(tf.zeros_like(g)); s = tf.Variable(tf.zeros_like(g)); var=tf.Variable(v.numpy())
@tf.function
def raw():
    tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=s.handle, beta1_power=0.9, beta2_power=0.999, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7, grad=g)
raw(); raw()
t=time.perf_counter()
for _ in range(200): raw()
print("ResourceApplyAdam", (time.perf_counter()-t)/200*1000, "ms")

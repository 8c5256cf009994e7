"""gru-lab's own recurrent loops ("gru-lab's loops"): compiled (C++ ops, compiled.py) and fused (TensorFlow
while loops, fused.py), behind Keras layer subclasses (layers.py), with the rules of where they apply
(support.py). Import gru_lab.rnn.layers for the layers; this package itself imports nothing heavy."""

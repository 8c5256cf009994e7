"""gru-lab: run and compare recurrent-network experiments (SimpleRNN, LSTM, GRU) on Keras 3."""

__version__ = "0.1.0"

"""The DeepPostures CNN-BiLSTM and the ``estimator_gen_fn`` of its grid search.

Per 10-second window (100 samples x 3 axes, one channel), a CNN of five convolutions with
``32a, 64a, 128a, 256a, 256a`` filters (``a`` is the amplification factor), kernels 5x3 then 5x1, stride
(2, 1), ``same`` padding and ReLU, then a dense layer of ``256a`` units, is applied to every window of a
sequence; a bidirectional LSTM of 128 units each way reads the windows' codes, and a softmax over the
two classes (0 sitting, 1 not sitting) is put out for every window.

The per-window CNN is written as ``Conv3D`` layers over ``(window, sample, axis)`` whose kernel and
stride are 1 along the window axis, which is exactly a ``Conv2D`` applied to each window on its own
(``TimeDistributed(Conv2D)``) in one operation. Keras 3's ``TimeDistributed`` unrolls a Python loop
over a static sequence length, putting 42 or 54 copies of the CNN into the traced graph: tracing took
minutes on 2 cores, and ran slower.

Two defects of the upstream Cerebro example are fixed here, and tested
(``tests/spark/test_deep_postures.py``): the L2 setting is a ``kernel_regularizer`` on every
convolution, dense and LSTM layer, so it adds ``l2 * sum(w ** 2)`` to the loss; and the output layer
ends in a softmax, which is what ``sparse_categorical_crossentropy`` (with ``from_logits=False``) expects.
"""

from __future__ import annotations

from typing import Any

SAMPLES, AXES = 100, 3
CONV_FILTERS = (32, 64, 128, 256, 256)
DENSE_UNITS = 256
LSTM_UNITS = 128
NUM_CLASSES = 2


def scaled(units: int, amp: float) -> int:
    """``units * amp`` rounded, at least 1: the width of a layer under amplification ``amp``."""
    return max(1, round(units * amp))


def build_model(seq_len: int, amp: float, l2: float, lstm_units: int = LSTM_UNITS) -> Any:
    """The CNN-BiLSTM for sequences of ``seq_len`` windows.

    Parameters
    ----------
    seq_len : int
        Windows per sequence (42 for 7 minutes, 54 for 9).
    amp : float
        The amplification factor ``a`` of the CNN's widths (2 or 4 in the paper's grid).
    l2 : float
        L2 penalty factor of every kernel (0 for none).
    lstm_units : int, default 128
        LSTM units in each direction.

    Returns
    -------
    keras.Model
        Input ``(seq_len, 300)`` (each window's samples flattened, x/y/z interleaved), output
        ``(seq_len, 2)``: per-window class probabilities.
    """
    import keras
    from keras import layers

    def reg() -> Any:
        return keras.regularizers.L2(l2) if l2 > 0 else None

    inputs = keras.Input((seq_len, SAMPLES * AXES), name="features")
    x = layers.Reshape((seq_len, SAMPLES, AXES, 1), name="windows")(inputs)
    for i, filters in enumerate(CONV_FILTERS):
        # a kernel of extent 1 (and stride 1) along the sequence: each window is convolved on its own
        x = layers.Conv3D(
            scaled(filters, amp), (1, 5, 3) if i == 0 else (1, 5, 1), strides=(1, 2, 1), padding="same",
            activation="relu", kernel_regularizer=reg(), name=f"conv{i + 1}",
        )(x)  # fmt: skip
    x = layers.Reshape((seq_len, -1), name="flatten")(x)  # (seq_len, 4 * 3 * filters) per window
    x = layers.Dense(
        scaled(DENSE_UNITS, amp), activation="relu", kernel_regularizer=reg(), name="window_code"
    )(x)  # a Dense layer acts on the last axis: per window
    lstm = layers.LSTM(lstm_units, return_sequences=True, kernel_regularizer=reg())
    x = layers.Bidirectional(lstm, name="bilstm")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", kernel_regularizer=reg(), name="posture")(x)
    return keras.Model(inputs, outputs, name=f"cnn_bilstm_a{amp:g}_w{seq_len}")


def estimator_gen_fn(params: dict[str, Any]) -> Any:
    """One configuration of the grid -> a KerasEstimator.

    ``params`` holds ``lr``, ``l2``, ``amp`` and ``seq_len`` (windows per sequence: the search's data
    fixes it), and optionally ``batch_size`` (default 32).
    """
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = build_model(int(params["seq_len"]), float(params["amp"]), float(params["l2"]))
    return KerasEstimator(
        model=model,
        optimizer=keras.optimizers.Adam(float(params["lr"])),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        batch_size=int(params.get("batch_size", 32)),
    )

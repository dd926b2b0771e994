"""Make the Keras fixtures of tests/test_keras_import.py: run once by hand, with TensorFlow, never at test time.

The seed's Keras model (the code of the seed slides, unchanged) is trained
briefly on MNIST and saved in the formats users have: `.keras` and legacy
`.h5`, each from Keras 3 (tf.keras in TensorFlow >= 2.16) and from Keras 2
(the tf-keras package), with Keras's own outputs on the engine's sample
digits. A variant with ReLU and max pooling stands for a file of another
architecture. The tests then compare the engine with Keras without
TensorFlow installed.

    python3.11 -m venv /tmp/tf
    /tmp/tf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    /tmp/tf/bin/python tests/data/make_keras_fixture.py

Writes, beside this script:
    seed_keras3.keras, seed_keras3.h5   Keras 3 saves of the trained model
    seed_keras2.keras, seed_keras2.h5   Keras 2 saves of the same weights
    relu_maxpool_keras3.h5              another architecture (to be refused)
    seed_keras_outputs.npz              per file stem: Keras's softmax outputs
                                        (`<stem>_probs`) and pre-softmax logits
                                        (`<stem>_logits`) on the 200 sample digits
    seed_keras_fixture.json             versions and recipe
MNIST is read from $LENET_ENGINE_DATA/mnist, else ../../shared/data/mnist.
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLES = ROOT / "lenet_engine" / "data" / "sample_digits.npz"
TRAIN_DIGITS = 60000  # one epoch of the training set: the weights of a (briefly) trained model
SEED = 0


def mnist_train():
    folder = Path(os.environ.get("LENET_ENGINE_DATA", ROOT.parent / "shared" / "data")) / "mnist"
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return images, labels


def seed_model(keras):
    """The seed slides' code, line for line (with the layers imported from `keras`)."""
    Sequential = keras.models.Sequential
    Conv2D, AveragePooling2D = keras.layers.Conv2D, keras.layers.AveragePooling2D
    Flatten, Dense = keras.layers.Flatten, keras.layers.Dense
    ZeroPadding2D = keras.layers.ZeroPadding2D

    LeNet5 = Sequential()
    LeNet5.add(ZeroPadding2D(padding=2))
    LeNet5.add(Conv2D(filters=6, kernel_size=5, padding='valid', strides=1, activation='tanh'))
    LeNet5.add(AveragePooling2D(pool_size=2, strides=2))
    LeNet5.add(Conv2D(filters=16, kernel_size=5, padding='valid', strides=1, activation='tanh'))
    LeNet5.add(AveragePooling2D(pool_size=2, strides=2))
    LeNet5.add(Flatten())
    LeNet5.add(Dense(units=120, activation='tanh'))
    LeNet5.add(Dense(units=84, activation='tanh'))
    LeNet5.add(Dense(units=10, activation='softmax'))

    LeNet5.build(input_shape=(None,28,28,1))
    return LeNet5


def relu_maxpool_model(keras):
    L = keras.layers
    model = keras.models.Sequential([
        L.ZeroPadding2D(padding=2),
        L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])
    model.build(input_shape=(None, 28, 28, 1))
    return model


def keras_outputs(keras, model, x):
    """(softmax outputs, logits): the logits from a copy whose last layer has no activation."""
    probs = model.predict(x, verbose=0)
    logits_model = seed_model(keras)
    logits_model.set_weights(model.get_weights())
    logits_model.layers[-1].activation = keras.activations.linear
    return probs, logits_model.predict(x, verbose=0)


def save_and_check(keras, model, stem, x, outputs):
    """Save as .keras and .h5, reload each with Keras, and record Keras's outputs on x."""
    for suffix in (".keras", ".h5"):
        path = HERE / f"{stem}{suffix}"
        model.save(path)
        reloaded = keras.models.load_model(path)
        np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    probs, logits = keras_outputs(keras, model, x)
    outputs[f"{stem}_probs"], outputs[f"{stem}_logits"] = probs, logits


def keras3_main():
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    images, labels = mnist_train()
    x_train = images[:TRAIN_DIGITS, :, :, None].astype("float32") / 255.0
    y_train = labels[:TRAIN_DIGITS].astype("int64")
    x = np.load(SAMPLES)["images"][:, :, :, None].astype("float32") / 255.0

    model = seed_model(keras)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=2)

    outputs = {}
    save_and_check(keras, model, "seed_keras3", x, outputs)
    other = relu_maxpool_model(keras)
    other.save(HERE / "relu_maxpool_keras3.h5")

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.npz"
        np.savez(weights, *model.get_weights())
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        subprocess.run([sys.executable, __file__, "--keras2", str(weights)], check=True, env=env)
        with np.load(Path(tmp) / "keras2_outputs.npz") as keras2:
            outputs.update(keras2)
        keras2_version = (Path(tmp) / "keras2_version.txt").read_text()
    np.savez_compressed(HERE / "seed_keras_outputs.npz", **outputs)

    sample_labels = np.load(SAMPLES)["labels"]
    record = {
        "made_by": "tests/data/make_keras_fixture.py",
        "tensorflow": tf.__version__, "keras3": keras.__version__, "keras2": keras2_version,
        "recipe": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "epochs": 1,
                   "batch_size": 32, "train_digits": TRAIN_DIGITS, "seed": SEED},
        "train_accuracy": float(history.history["accuracy"][-1]),
        "sample_accuracy": float(np.mean(outputs["seed_keras3_probs"].argmax(1) == sample_labels)),
    }
    (HERE / "seed_keras_fixture.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


def keras2_main(weights_path):
    import tf_keras as keras

    x = np.load(SAMPLES)["images"][:, :, :, None].astype("float32") / 255.0
    model = seed_model(keras)
    with np.load(weights_path) as w:
        model.set_weights([w[f"arr_{i}"] for i in range(len(w.files))])
    # A trained Keras 2 model is saved compiled, optimizer state and all.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    outputs = {}
    save_and_check(keras, model, "seed_keras2", x, outputs)
    folder = Path(weights_path).parent
    np.savez(folder / "keras2_outputs.npz", **outputs)
    (folder / "keras2_version.txt").write_text(keras.__version__)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--keras2":
        keras2_main(sys.argv[2])
    else:
        keras3_main()

"""Training machinery: layer-group selection, the loss-summing train step, checkpoints.

The training graph (:func:`mrcnn.modeling.build.build_training_model`) computes the five losses as outputs.
:class:`TrainingModel` wraps it for ``keras.Model.fit``: it weights and sums them, adds L2 weight decay, clips
the gradients to a global norm and applies SGD with momentum, as Matterport's Keras-2 setup did.
"""

from __future__ import annotations

import os
import re
import tempfile

import keras
import tensorflow as tf

from mrcnn.config import Config
from mrcnn.modeling.build import LOSS_OUTPUTS
from mrcnn.weights import save_weights_h5

# Matterport's layer groups: regular expressions on layer names.
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


def layer_regex(layers: str) -> str:
    """Resolve a layer-group name ('heads', '3+', '4+', '5+', 'all') or pass a regular expression through."""
    return LAYER_REGEX.get(layers, layers)


def set_trainable(model: keras.Model, layers: str, verbose: int = 0) -> list[str]:
    """Make the weighted layers whose names fully match ``layers`` trainable and freeze the rest.

    Nested models (the RPN) are walked into, so their inner layers match on their own names.
    Returns the names of the trainable layers.
    """
    pattern = re.compile(layer_regex(layers))
    trainable = []

    def visit(container):
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                layer.trainable = True
                visit(layer)
                continue
            if not layer.weights:
                continue
            on = bool(pattern.fullmatch(layer.name))
            layer.trainable = on
            if on:
                trainable.append(layer.name)
            if verbose > 0:
                print(f"{'training' if on else 'frozen  '}  {layer.name:30} ({type(layer).__name__})")

    visit(model)
    return trainable


def weight_decay_loss(variables, weight_decay: float) -> tf.Tensor:
    """Matterport's L2 regulariser: sum over kernels of ``weight_decay * sum(w**2) / size(w)``.

    BatchNorm gamma and beta are not decayed.
    """
    terms = [
        weight_decay * tf.reduce_sum(tf.square(v)) / tf.cast(tf.size(v), tf.float32)
        for v in variables
        if not any(part in v.path for part in ("gamma", "beta"))
    ]
    if not terms:
        return tf.constant(0.0)
    return tf.add_n(terms)


class TrainingModel(keras.Model):
    """Wraps the training graph for ``fit``: total loss = sum of weighted losses + weight decay.

    ``fit`` is given a loader whose batches are dicts keyed by the graph's input names.
    """

    def __init__(self, network: keras.Model, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.config = config
        self.loss_weights_ = [float(config.LOSS_WEIGHTS[name]) for name in LOSS_OUTPUTS]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", *LOSS_OUTPUTS)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def _compute_losses(self, data, training: bool):
        inputs = data[0] if isinstance(data, tuple) else data
        outputs = self.network(inputs, training=training)
        terms = [tf.reduce_mean(t) for t in outputs[-len(LOSS_OUTPUTS) :]]
        weighted = [w * t for w, t in zip(self.loss_weights_, terms)]
        total = tf.add_n(weighted)
        return total, terms

    def _update(self, total, terms):
        self.trackers["loss"].update_state(total)
        for name, value in zip(LOSS_OUTPUTS, terms):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            total, terms = self._compute_losses(data, training=True)
            total = total + weight_decay_loss(variables, self.config.WEIGHT_DECAY)
        grads = tape.gradient(total, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self.optimizer.apply_gradients(pairs)
        return self._update(total, terms)

    def test_step(self, data):
        total, terms = self._compute_losses(data, training=False)
        return self._update(total, terms)


def make_optimizer(config: Config, learning_rate: float) -> keras.optimizers.Optimizer:
    """SGD with momentum; gradients clipped to GRADIENT_CLIP_NORM over all of them together (Keras 2 clipnorm)."""
    return keras.optimizers.SGD(
        learning_rate=learning_rate,
        momentum=config.LEARNING_MOMENTUM,
        global_clipnorm=config.GRADIENT_CLIP_NORM,
    )


def atomic_save_h5(model: keras.Model, path: str) -> None:
    """Write ``model``'s weights to ``path`` so that a crash never leaves a half-written file there."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".h5.part", dir=directory)
    os.close(fd)
    try:
        save_weights_h5(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves the graph's weights after every epoch as ``checkpoint_path.format(epoch=N)`` (N 1-based)."""

    def __init__(self, network: keras.Model, checkpoint_path: str, on_save=None):
        super().__init__()
        self.network = network
        self.checkpoint_path = checkpoint_path
        self.on_save = on_save

    def on_epoch_end(self, epoch, logs=None):
        path = self.checkpoint_path.format(epoch=epoch + 1)
        atomic_save_h5(self.network, path)
        if self.on_save is not None:
            self.on_save(epoch + 1, path)

"""Training machinery: layer-group selection, the loss-summing train step, checkpoints.

The training graph (:func:`mrcnn.modeling.build.build_training_model`) computes the five losses as outputs (six
with an attribute head, see :func:`mrcnn.modeling.build.loss_outputs`).
:class:`TrainingModel` wraps it for ``keras.Model.fit``: it weights and sums them, adds L2 weight decay, clips
the gradients to a global norm and applies SGD with momentum, as Matterport's Keras-2 setup did.

Distributed training runs on ``tf.distribute``: :func:`make_strategy` maps ``GPU_COUNT > 1`` to a
``MirroredStrategy``; any strategy (``MultiWorkerMirroredStrategy`` for several machines) may be passed instead.
Each replica sees IMAGES_PER_GPU images; its loss is divided by the number of replicas and the gradients are
summed across replicas, so the step minimises the mean over replicas of their losses (as Matterport's
multi-GPU ``ParallelModel`` averaged the per-GPU losses). Gradients are clipped after that sum, so the clip
applies to the global batch's gradient, not to each replica's share.
"""

from __future__ import annotations

import re
import warnings

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config import Config
from mrcnn.data.loader import DataLoader
from mrcnn.modeling.build import loss_outputs
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


def set_trainable(model: keras.Model, layers: str, verbose: int = 0, indent: int = 0) -> list[str]:
    """Make the weighted layers whose names fully match ``layers`` trainable and freeze the rest.

    Nested models (the RPN) are walked into, so their inner layers match on their own names.
    verbose > 0 prints each layer's state, ``indent`` spaces in, a nested model's layers 4 spaces further.
    Returns the names of the trainable layers.
    """
    pattern = re.compile(layer_regex(layers))
    trainable = []

    def visit(container, pad: str):
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                layer.trainable = True
                if verbose > 0:
                    print(f"{pad}In model: {layer.name}")
                visit(layer, pad + "    ")
                continue
            if not layer.weights:
                continue
            on = bool(pattern.fullmatch(layer.name))
            layer.trainable = on
            if on:
                trainable.append(layer.name)
            if verbose > 0:
                print(f"{pad}{'training' if on else 'frozen  '}  {layer.name:30} ({type(layer).__name__})")

    visit(model, " " * indent)
    return trainable


def _is_decayed(variable) -> bool:
    """Matterport decays every weight but BatchNorm's gamma and beta."""
    return not any(part in variable.path for part in ("gamma", "beta"))


def weight_decay_loss(variables, weight_decay: float) -> tf.Tensor:
    """Matterport's L2 regulariser: sum over kernels of ``weight_decay * sum(w**2) / size(w)``.

    BatchNorm gamma and beta are not decayed.
    """
    terms = [
        weight_decay * tf.reduce_sum(tf.square(v)) / tf.cast(tf.size(v), tf.float32)
        for v in variables
        if _is_decayed(v)
    ]
    if not terms:
        return tf.constant(0.0)
    return tf.add_n(terms)


def weight_decay_gradient(variable, weight_decay: float) -> tf.Tensor | None:
    """d weight_decay_loss / d variable = 2 * weight_decay * w / size(w); None for undecayed variables.

    Added to the loss gradient directly: putting the regulariser through the gradient tape costs a
    broadcast and a multiply per weight in the backward pass for the same numbers.
    """
    if not _is_decayed(variable):
        return None
    size = tf.cast(tf.size(variable), tf.float32)
    return (2.0 * weight_decay / size) * tf.convert_to_tensor(variable)


class TrainingModel(keras.Model):
    """Wraps the training graph for ``fit``: total loss = sum of weighted losses + weight decay.

    ``fit`` is given a loader whose batches are dicts keyed by the graph's input names.
    """

    def __init__(self, network: keras.Model, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.config = config
        self.loss_names = loss_outputs(config)
        self.loss_weights_ = [float(config.LOSS_WEIGHTS[name]) for name in self.loss_names]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", *self.loss_names)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def _compute_losses(self, data, training: bool):
        inputs = data[0] if isinstance(data, tuple) else data
        if isinstance(inputs, dict) and inputs.get("input_gt_masks") is not None:
            inputs = dict(inputs, input_gt_masks=tf.cast(inputs["input_gt_masks"], tf.bool))
        outputs = self.network(inputs, training=training)
        terms = [tf.reduce_mean(t) for t in outputs[-len(self.loss_names) :]]
        weighted = [w * t for w, t in zip(self.loss_weights_, terms)]
        total = tf.add_n(weighted)
        return total, terms

    def _update(self, total, terms):
        self.trackers["loss"].update_state(total)
        for name, value in zip(self.loss_names, terms):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        variables = self.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        loss_scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        if loss_scaled and not self.optimizer.built:
            self.optimizer.build(variables)  # creates the loss scale variable used below
        with tf.GradientTape() as tape:
            total, terms = self._compute_losses(data, training=True)
            # Gradients are summed over replicas: scale so that the sum is the mean over the global batch.
            objective = total / replicas
            if loss_scaled:
                objective = self.optimizer.scale_loss(objective)
        grads = tape.gradient(objective, variables)
        decay = self.config.WEIGHT_DECAY
        total = total + weight_decay_loss(variables, decay)  # of the weights before this step's update
        # Every decayed variable has a gradient (the regulariser's), even where the losses give it none.
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None or (decay and _is_decayed(v))]
        grads = self._global_gradients(pairs, replicas, loss_scaled)
        self.optimizer.apply_gradients(zip(grads, [v for _, v in pairs]))
        return self._update(total, terms)

    def _global_gradients(self, pairs, replicas: int, loss_scaled: bool):
        """The step's gradients for (loss gradient or None, variable) ``pairs``: the loss gradients summed over
        replicas, plus the weight-decay gradient, clipped to GRADIENT_CLIP_NORM as one vector.

        The optimizer sums over replicas again, so the result is divided by ``replicas`` (exact for 2, 4, ...).
        With a loss-scale optimizer the clip applies to the unscaled gradients and the scale is put back for
        the optimizer to remove (inf/nan stay non-finite, so it still skips such steps).
        """
        grads = [tf.zeros_like(v) if g is None else g for g, v in pairs]
        context = tf.distribute.get_replica_context()
        if replicas > 1 and context is not None:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if loss_scaled else None
        if scale is not None:
            grads = [g / scale for g in grads]
        decay = self.config.WEIGHT_DECAY
        if decay:
            decays = [weight_decay_gradient(v, decay) for _, v in pairs]
            grads = [g if d is None else g + d for g, d in zip(grads, decays)]
        if self.config.GRADIENT_CLIP_NORM:
            grads, _ = tf.clip_by_global_norm(grads, self.config.GRADIENT_CLIP_NORM)
        if scale is not None:
            grads = [g * scale for g in grads]
        if replicas > 1 and context is not None:
            grads = [g / replicas for g in grads]
        return grads

    def test_step(self, data):
        total, terms = self._compute_losses(data, training=False)
        return self._update(total, terms)


class TrainingLoader(DataLoader):
    """A :class:`DataLoader` whose ``input_gt_masks`` come as uint8 (0/1) instead of bool.

    Under a ``tf.distribute`` strategy Keras averages the first batch over replicas to build the trainer,
    which has no kernel for bool tensors. :class:`TrainingModel` casts the masks back to bool.
    """

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        batch = super().__getitem__(index)
        batch["input_gt_masks"] = batch["input_gt_masks"].view(np.uint8)
        return batch


def make_optimizer(config: Config, learning_rate: float) -> keras.optimizers.Optimizer:
    """SGD with momentum, wrapped in a ``LossScaleOptimizer`` when MIXED_PRECISION is "mixed_float16".

    Gradient clipping to GRADIENT_CLIP_NORM (over all gradients together, as Keras 2's clipnorm did) is done
    by :class:`TrainingModel` after summing the replicas' gradients, not by the optimizer.
    """
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM)
    if getattr(config, "MIXED_PRECISION", None) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_strategy(config: Config, strategy: tf.distribute.Strategy | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy to train ``config`` under.

    ``strategy`` when given (e.g. a ``MultiWorkerMirroredStrategy`` made at the start of the program from
    ``TF_CONFIG``). Otherwise ``GPU_COUNT > 1`` gives a ``MirroredStrategy`` over the first GPU_COUNT GPUs, or
    over GPU_COUNT logical CPU devices when there are that many and no GPUs (for tests); with fewer devices
    a warning and the default strategy, which runs the whole BATCH_SIZE batch on one device.
    ``GPU_COUNT == 1`` gives the default (no-op) strategy.
    """
    if strategy is not None:
        return strategy
    count = int(config.GPU_COUNT)
    if count <= 1:
        return tf.distribute.get_strategy()
    for kind in ("GPU", "CPU"):
        devices = tf.config.list_logical_devices(kind)
        if len(devices) >= count:
            return tf.distribute.MirroredStrategy([d.name for d in devices[:count]])
    warnings.warn(
        f"GPU_COUNT={count} but only {len(tf.config.list_logical_devices('GPU'))} GPUs: training the batch "
        f"of {config.BATCH_SIZE} images on one device",
        stacklevel=2,
    )
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and logs: always, except on the non-chief workers of a
    multi-worker strategy (the chief is task "chief", or "worker" 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def global_batch_size(config: Config, strategy: tf.distribute.Strategy) -> int:
    """Images per training step over all replicas: IMAGES_PER_GPU per replica (BATCH_SIZE without replicas)."""
    replicas = strategy.num_replicas_in_sync
    return config.BATCH_SIZE if replicas == 1 else config.IMAGES_PER_GPU * replicas


class CheckpointCallback(keras.callbacks.Callback):
    """Saves the graph's weights after every epoch as ``checkpoint_path.format(epoch=N)`` (N 1-based).

    metadata: optional function epoch -> :class:`mrcnn.metadata.CheckpointMetadata` written into each file.
    """

    def __init__(self, network: keras.Model, checkpoint_path: str, on_save=None, metadata=None):
        super().__init__()
        self.network = network
        self.checkpoint_path = checkpoint_path
        self.on_save = on_save
        self.metadata = metadata

    def on_epoch_end(self, epoch, logs=None):
        path = self.checkpoint_path.format(epoch=epoch + 1)
        metadata = self.metadata(epoch + 1) if self.metadata is not None else None
        save_weights_h5(self.network, path, metadata=metadata)  # writes a temporary file, then renames it
        if self.on_save is not None:
            self.on_save(epoch + 1, path)

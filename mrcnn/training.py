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
from mrcnn.precision import keras_policy
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
        logs = {name: tracker.result() for name, tracker in self.trackers.items()}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras averages each log over the workers with reduce(MEAN, axis=0), which fails on scalars.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

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

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras, under a distribution strategy, averages a first batch over the replicas to build the model
        symbolically before ``fit``; ``MultiWorkerMirroredStrategy`` cannot reduce a dict of batches. Nothing
        needs it here: the graph is built at construction and :meth:`MaskRCNN.train` builds the optimizer in
        the strategy's scope, so the build is left to the first traced step, as without a strategy."""
        if self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several worker processes (a MultiWorkerMirroredStrategy with a cluster)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


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
    """SGD with momentum, wrapped in a ``LossScaleOptimizer`` when MIXED_PRECISION means float16.

    Gradient clipping to GRADIENT_CLIP_NORM (over all gradients together, as Keras 2's clipnorm did) is done
    by :class:`TrainingModel` after summing the replicas' gradients, not by the optimizer.
    """
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM)
    if keras_policy(getattr(config, "MIXED_PRECISION", None)) == "mixed_float16":
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


class TrainingDivergedError(ArithmeticError):
    """Training met a non-finite loss or non-finite weights and stopped before writing a checkpoint of them.

    epoch: 1-based epoch being trained. step: 1-based step within it (None when the weights were found
    non-finite at the end of the epoch). loss: the epoch's mean loss up to that step (non-finite).
    terms: the non-finite loss terms. last_checkpoint: the last good checkpoint (None when none was written).
    """

    def __init__(self, message, epoch, step=None, loss=None, terms=(), last_checkpoint=None):
        super().__init__(message)
        self.epoch, self.step, self.loss, self.terms = epoch, step, loss, list(terms)
        self.last_checkpoint = last_checkpoint


def _last_good(path: str | None) -> str:
    if path:
        return f"the last good checkpoint is {path}"
    return "no checkpoint of this run was written"


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first step whose loss (or a loss term) is NaN or infinite, by raising
    :class:`TrainingDivergedError` naming the epoch, the step and the loss; the epoch's checkpoint is then
    never written. ``last_checkpoint``: a function giving the last written checkpoint, for the message.

    The check reads the step's logs, which ``fit`` computes anyway (a running mean over the epoch, which
    turns non-finite at the first non-finite step and stays so). Weights that turned non-finite in the last
    step of an epoch are caught by :class:`CheckpointCallback`, which refuses to write them.
    """

    def __init__(self, last_checkpoint=lambda: None):
        super().__init__()
        self.last_checkpoint = last_checkpoint
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = {k: float(v) for k, v in logs.items() if _is_number(v) and not np.isfinite(float(v))}
        if not bad:
            return
        loss = bad.get("loss", float(logs.get("loss", np.nan)))
        terms = [k for k in bad if k != "loss"]
        last = self.last_checkpoint()
        raise TrainingDivergedError(
            f"training diverged at epoch {self.epoch + 1}, step {batch + 1}: loss is {loss}"
            + (f" ({', '.join(f'{k} {bad[k]}' for k in terms)})" if terms else "")
            + f"; stopped without writing a checkpoint of epoch {self.epoch + 1}; {_last_good(last)}. "
            "Lower the learning rate (or check the data) and resume from the last good checkpoint.",
            epoch=self.epoch + 1,
            step=batch + 1,
            loss=loss,
            terms=terms,
            last_checkpoint=last,
        )


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class CheckpointCallback(keras.callbacks.Callback):
    """After every epoch: the graph's weights as ``checkpoint_path.format(epoch=N)`` (N 1-based), then the
    epoch's row of ``history_path`` (see :mod:`mrcnn.history`), in that order.

    metadata: optional function (epoch, epoch_logs) -> :class:`mrcnn.metadata.CheckpointMetadata` written
    into each file. optimizer_state: optional function (epoch) -> :class:`mrcnn.optimizer_state.OptimizerState`
    (or None), written into the same file in the same write. The checkpoint is written atomically
    (``save_weights_h5``); weights (or optimizer slots) holding NaN or inf are never written:
    :class:`TrainingDivergedError` stops training instead, naming the last good checkpoint
    (``last_checkpoint``, also the one a resumed run started from).
    """

    def __init__(
        self,
        network: keras.Model,
        checkpoint_path: str,
        on_save=None,
        metadata=None,
        history_path: str | None = None,
        last_checkpoint: str | None = None,
        optimizer_state=None,
    ):
        super().__init__()
        self.network = network
        self.checkpoint_path = checkpoint_path
        self.on_save = on_save
        self.metadata = metadata
        self.optimizer_state = optimizer_state
        self.history_path = history_path
        self.last_checkpoint = last_checkpoint

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        from mrcnn.history import epoch_row, record_epoch
        from mrcnn.weights import NonFiniteWeightsError

        path = self.checkpoint_path.format(epoch=epoch + 1)
        row = epoch_row(epoch, logs, self._learning_rate())
        metadata = self.metadata(epoch + 1, row) if self.metadata is not None else None
        state = self.optimizer_state(epoch + 1) if self.optimizer_state is not None else None
        try:
            save_weights_h5(self.network, path, metadata=metadata, check_finite=True, optimizer_state=state)
        except NonFiniteWeightsError as e:
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch + 1}: {e}; {_last_good(self.last_checkpoint)}. Lower the "
                "learning rate (or check the data) and resume from the last good checkpoint.",
                epoch=epoch + 1,
                loss=(logs or {}).get("loss"),
                last_checkpoint=self.last_checkpoint,
            ) from None
        self.last_checkpoint = path
        if self.on_save is not None:  # the checkpoint is complete: say so before anything else can fail
            self.on_save(epoch + 1, path)
        if self.history_path is not None:
            record_epoch(self.history_path, row)  # a kill before this line: the row comes back on resume


class InterruptGuard:
    """Ctrl-C (SIGINT) during training: stops at once and is never lost.

    Inside ``with InterruptGuard() as guard:`` (in the main thread) SIGINT sets ``guard.requested`` and raises
    KeyboardInterrupt where the program is. Python drops an exception raised inside a ``__del__`` method or
    a weakref callback (TensorFlow, h5py and the data loader run some during a step or a checkpoint write),
    printing "Exception ignored in ..." and going on; :meth:`callback` re-raises at the next step, at the
    end of validation steps and after each epoch when that happened, and :meth:`check` after ``fit``.
    Outside the main thread the guard does nothing (signals are delivered to the main thread only).
    """

    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def _handle(self, signum, frame):
        self.requested = True
        raise KeyboardInterrupt

    def __enter__(self) -> InterruptGuard:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            # Only where Ctrl-C would raise KeyboardInterrupt anyway (not where the program ignores it).
            if previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._handle)
                self._previous, self._installed = previous, True
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def check(self) -> None:
        """Raise KeyboardInterrupt when a Ctrl-C came (whether or not its first KeyboardInterrupt got lost)."""
        if self.requested:
            raise KeyboardInterrupt

    def callback(self) -> keras.callbacks.Callback:
        guard = self

        class _CheckInterrupt(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                guard.check()

            def on_test_batch_end(self, batch, logs=None):
                guard.check()

            def on_epoch_end(self, epoch, logs=None):
                guard.check()

        return _CheckInterrupt()


def run_callbacks(
    network: keras.Model,
    interrupts: InterruptGuard,
    checkpoint_path: str | None,
    last_checkpoint=lambda: None,
    on_save=None,
    metadata=None,
    history_path: str | None = None,
    log_dir: str | None = None,
    optimizer_state=None,
) -> list[keras.callbacks.Callback]:
    """The callbacks of a training run, in the order that makes faults safe (``MaskRCNN.train`` uses it):

    1. :class:`NonFiniteGuard`: a non-finite step loss stops training before anything of that epoch is written;
    2. when ``checkpoint_path`` is given (the chief's run): :class:`CheckpointCallback` (the checkpoint of
       ``network``, then its history row), then TensorBoard under ``log_dir`` when given;
    3. ``interrupts``' check, after the checkpoint: a Ctrl-C lost inside its write still stops training.

    last_checkpoint: a function giving the last complete checkpoint (for messages); on_save, metadata,
    history_path, optimizer_state: passed to :class:`CheckpointCallback`. Run ``fit`` inside
    ``with interrupts:``.
    """
    callbacks: list[keras.callbacks.Callback] = [NonFiniteGuard(last_checkpoint)]
    if checkpoint_path is not None:
        callbacks.append(
            CheckpointCallback(
                network,
                checkpoint_path,
                on_save=on_save,
                metadata=metadata,
                history_path=history_path,
                last_checkpoint=last_checkpoint(),
                optimizer_state=optimizer_state,
            )
        )
        if log_dir is not None:
            callbacks.append(
                keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False)
            )
    callbacks.append(interrupts.callback())
    return callbacks


class MultiWorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` made safe for several workers and for kills at any moment.

    After every epoch the chief backs up the trainer's whole state (weights and optimizer slots, e.g. SGD's
    momentum) under ``backup_dir``; when ``fit`` starts again (all workers restarted after one died), every
    worker restores the chief's last backup and training goes on with the epoch after it: no epoch is lost
    and none is trained twice (a kill during an epoch loses that epoch's steps only).

    What it changes in Keras' callback (which lets every worker write the same files, in place):
    - only the chief writes ``backup_dir`` (non-chief workers write nothing) and only the chief deletes it
      when training ends; every worker restores from it, so ``backup_dir`` must be on storage all workers
      read (a shared file system or a bucket; on one machine any folder).
    - a backup is a new weights file ``epoch-<N>.weights.h5`` written to a temporary name and renamed, then
      ``training_metadata.json`` naming it (also written and renamed), then older weights files are removed:
      a kill at any moment leaves the previous complete backup or the new one, never a mix.

    Epoch backups only (``save_freq="epoch"``). Use with :meth:`mrcnn.model.MaskRCNN.train`'s
    ``custom_callbacks``; load the run's last checkpoint first (``model.load_weights(model.find_last())``) so
    that checkpoints and history.csv continue in the run's folder.
    """

    def __init__(self, backup_dir: str, delete_checkpoint: bool = True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)

    def _chief(self) -> bool:
        strategy = getattr(self.model, "distribute_strategy", None)
        return is_chief(strategy) if strategy is not None else True

    def _read_metadata(self) -> dict | None:
        import json

        try:
            with open(self._training_metadata_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def on_train_begin(self, logs=None):
        import os

        metadata = self._read_metadata()
        if not metadata:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # slots must exist to be restored
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = int(metadata["epoch"])  # where Keras' own callback puts it

    def on_train_batch_end(self, batch, logs=None):
        pass  # epoch backups only

    def on_epoch_end(self, epoch, logs=None):
        import json
        import os
        import shutil

        name = f"epoch-{epoch + 1:04d}.weights.h5"
        if not self._chief():
            # Every worker saves (reading some variables is a collective under a multi-worker strategy);
            # a non-chief's copy goes to a folder of its own and is thrown away.
            resolver = self.model.distribute_strategy.cluster_resolver
            scratch = os.path.join(self.backup_dir, f".{resolver.task_type}-{resolver.task_id}")
            os.makedirs(scratch, exist_ok=True)
            self.model.save_weights(os.path.join(scratch, name), overwrite=True)
            shutil.rmtree(scratch, ignore_errors=True)
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        path = os.path.join(self.backup_dir, name)
        tmp = os.path.join(self.backup_dir, f"tmp-{name}")  # Keras wants the .weights.h5 ending
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
        meta_tmp = self._training_metadata_path + ".tmp"
        with open(meta_tmp, "w", encoding="utf-8") as f:
            json.dump({"epoch": epoch + 1, "weights": name}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(meta_tmp, self._training_metadata_path)
        for entry in os.listdir(self.backup_dir):
            if entry.endswith(".weights.h5") and entry != name:
                os.remove(os.path.join(self.backup_dir, entry))

    def on_train_end(self, logs=None):
        import shutil

        if self.delete_checkpoint and self._chief():
            shutil.rmtree(self.backup_dir, ignore_errors=True)

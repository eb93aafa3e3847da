"""The ``MaskRCNN`` facade with Matterport's public API: build, train, detect, weights and log folders.

Matterport's helper functions that notebooks import from ``mrcnn.model`` (``load_image_gt``, ``data_generator``,
``mold_image``, ``compose_image_meta``, ...) are re-exported here from the modules where they now live. Every
other public name of Matterport's ``model.py`` (``resnet_graph``, ``fpn_classifier_graph``, ``ProposalLayer``,
the loss graphs, ``compute_backbone_shapes``, ``build_detection_targets``, ...) resolves on first use, with
Matterport's signature and meaning (see ``_MATTERPORT_NAMES`` and :mod:`mrcnn.matterport_compat`).
"""

from __future__ import annotations

import collections
import copy
import datetime
import importlib
import logging
import os
import re
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn import optimizer_state
from mrcnn.attributes import attributes_above
from mrcnn.catalogue import IMAGENET_RESNET50, WeightsFile
from mrcnn.config import Config
from mrcnn.data.dataset import check_image_for_detection
from mrcnn.data.ground_truth import build_rpn_targets, load_image_gt  # noqa: F401  (Matterport re-exports)
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta  # noqa: F401
from mrcnn.data.loader import DataLoader, data_generator  # noqa: F401
from mrcnn.history import HISTORY_FILE, recover_history
from mrcnn.images import mold_image, resize_image, unmold_image  # noqa: F401
from mrcnn.log import log  # noqa: F401
from mrcnn.metadata import CheckpointMetadata, read_metadata
from mrcnn.modeling.build import build_inference_model, build_training_model, pyramid_anchors
from mrcnn.pipeline import ImageMeta, MoldedBatch, kept_detection_rows, mold_images
from mrcnn.pipeline import unmold_detections as unmold_one_image
from mrcnn.runs import _CHECKPOINT_RE, _listdir, find_last_checkpoint, run_checkpoints, run_folders  # noqa: F401  (public here too)
from mrcnn.training import (
    LAYER_REGEX,  # noqa: F401
    InterruptGuard,
    TrainingLoader,
    TrainingModel,
    global_batch_size,
    is_chief,
    layer_regex,
    make_optimizer,
    make_strategy,
    run_callbacks,
    set_trainable,
)
from mrcnn.weights import copy_weights, load_weights_h5, save_weights_h5

# The ImageNet ResNet50 entry of the weights catalogue (mrcnn.catalogue), under its former names.
IMAGENET_RESNET50_URL = IMAGENET_RESNET50.url
IMAGENET_RESNET50_MD5 = IMAGENET_RESNET50.md5

logger = logging.getLogger(__name__)


def _input_tensors(tensor) -> list:
    """The tensors the layer call that made ``tensor`` took (none for a model input or a plain tensor)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    return list(history.operation._inbound_nodes[history.node_index].input_tensors)


class MaskRCNN:
    """Mask R-CNN with Matterport's interface.

    Args:
        mode: "training" or "inference".
        config: a :class:`mrcnn.config.Config` (subclass) instance.
        model_dir: folder for training logs and checkpoints.
        strategy: a ``tf.distribute.Strategy`` to train under (training mode only), e.g. a
            ``MultiWorkerMirroredStrategy`` for several machines. Without it, GPU_COUNT > 1 gives a
            ``MirroredStrategy`` (see :func:`mrcnn.training.make_strategy`). The graph is built in its scope.
    """

    def __init__(
        self, mode: str, config: Config, model_dir: str, strategy: tf.distribute.Strategy | None = None
    ):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.epoch = 0
        # Class names by class id and the dataset's category ids: written into every checkpoint (see
        # mrcnn.metadata); set by train() from its dataset or by load_weights() from a file that has them.
        self.class_names: list[str] | None = None
        self.class_source_ids: list[int] | None = None
        # Further checkpoint metadata fields (preset, dataset_format, attribute_names) an application sets.
        self.checkpoint_fields: dict = {}
        # The metadata of the last file loaded (None for files without it, e.g. Matterport's).
        self.checkpoint_metadata: CheckpointMetadata | None = None
        # The last complete checkpoint of the run in log_dir: the one resumed from, then each one written.
        self.last_checkpoint: str | None = None
        self._anchor_cache: dict[tuple, np.ndarray] = {}
        self._predict_fn = None
        self.set_log_dir()
        if mode == "training":
            self.strategy = make_strategy(config, strategy)
        else:
            self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.keras_model = self.build(mode, config)

    # -- graph ---------------------------------------------------------------------------------------------

    def build(self, mode: str, config: Config) -> keras.Model:
        """Build the Keras graph for ``mode``."""
        if mode == "training":
            return build_training_model(config)
        return build_inference_model(config)

    def get_anchors(self, image_shape) -> np.ndarray:
        """Anchors for a molded image of ``image_shape``: [A, (y1, x1, y2, x2)] normalized, cached by shape."""
        key = tuple(int(v) for v in image_shape[:2])
        if key not in self._anchor_cache:
            self._anchor_cache[key] = pyramid_anchors(self.config, key)
        return self._anchor_cache[key]

    def ancestor(self, tensor, name, checked=None):
        """The nearest tensor upstream of ``tensor`` (a symbolic tensor of this model's graph, e.g.
        ``model.keras_model.get_layer("mrcnn_detection").output``) made by a layer whose name fully matches
        the regular expression ``name``; None when there is none.

        Keras 3 numbers its tensors (``keras_tensor_12``), so where Matterport matched TensorFlow tensor names
        this matches the producing layer's name (``"ROI"``, ``"rpn_class.*"``). ``checked``: tensors not to
        search (Matterport's internal list); normally left out.
        """
        pattern = re.compile(name) if isinstance(name, str) else name
        seen = {id(t) for t in checked or ()}
        frontier = collections.deque(_input_tensors(tensor))
        while frontier:  # breadth first: the nearest match wins
            current = frontier.popleft()
            if id(current) in seen:
                continue
            seen.add(id(current))
            history = getattr(current, "_keras_history", None)
            if history is None:
                continue
            if pattern.fullmatch(history.operation.name):
                return current
            frontier.extend(_input_tensors(current))
        return None

    def find_trainable_layer(self, layer):
        """The layer holding ``layer``'s weights: the wrapped layer of a ``TimeDistributed`` (or any other
        ``keras.layers.Wrapper``), unwrapped as deep as it goes; ``layer`` itself otherwise."""
        while isinstance(layer, keras.layers.Wrapper):
            layer = layer.layer
        return layer

    def get_trainable_layers(self) -> list:
        """Layers that have weights, nested models walked into."""
        found = []

        def visit(container):
            for layer in container.layers:
                if isinstance(layer, keras.Model):
                    visit(layer)
                elif layer.weights:
                    found.append(layer)

        visit(self.keras_model)
        return found

    def set_trainable(self, layer_regex_or_group: str, keras_model=None, indent=0, verbose=1) -> list[str]:
        """Freeze every weighted layer except those matching a group name or regex. Returns the trainable names.

        verbose > 0 prints each layer's state, ``indent`` spaces in (nested models 4 more).
        """
        return set_trainable(
            keras_model or self.keras_model, layer_regex_or_group, verbose=verbose, indent=indent
        )

    # -- weights and log folders ---------------------------------------------------------------------------

    def load_weights(
        self, filepath: str | WeightsFile, by_name: bool = False, exclude: Sequence[str] | None = None
    ):
        """Load a Keras-2 layout ``.h5`` (Matterport's files or ours).

        ``filepath`` may also be an entry of the weights catalogue (``mrcnn.catalogue.get_weights("coco")``):
        it is fetched (cached, downloaded once) and, unless ``exclude`` is given, the class-specific heads
        are left out when this model's NUM_CLASSES differs from the file's.

        ``by_name`` matches layers by name (the nested RPN included) and skips layers absent from the file;
        ``exclude`` lists layer names never loaded. A shape mismatch in a loaded layer raises an error naming
        the layer and both shapes, and leaves the model untouched. A file holding NaN or infinite weights is
        refused (``mrcnn.weights.NonFiniteWeightsError`` naming it). A checkpoint inside a run folder
        (``<name><timestamp>/mask_rcnn_<name>_<epoch>.h5``) continues that run: its folder and epoch count
        (see :meth:`set_log_dir`). Returns the load report.
        """
        if isinstance(filepath, WeightsFile):
            if exclude is None:
                exclude = filepath.exclude_for(self.config.NUM_CLASSES)
            filepath = filepath.fetch()
        report = load_weights_h5(self.keras_model, filepath, by_name=by_name, exclude=exclude)
        self.checkpoint_metadata = metadata = read_metadata(filepath)
        excluded = {exclude} if isinstance(exclude, str) else set(exclude or ())
        if metadata is not None and metadata.num_classes == self.config.NUM_CLASSES and not excluded:
            if metadata.class_names is not None:
                self.class_names = list(metadata.class_names)
            self.class_source_ids = metadata.class_source_ids
            for name in ("preset", "dataset_format"):
                if getattr(metadata, name) is not None:
                    self.checkpoint_fields.setdefault(name, getattr(metadata, name))
        for name in ("attribute_names", "attribute_source_ids"):
            values = getattr(metadata, name) if metadata is not None else None
            if values is not None and len(values) == int(self.config.NUM_ATTRIBUTES) and not excluded:
                self.checkpoint_fields.setdefault(name, list(values))
        if report.skipped_attribute_layers:
            logger.warning(
                "%s has an attribute head (%s) but this model has none (NUM_ATTRIBUTES = 0): its layers were "
                "skipped; build the model with the checkpoint's config (MaskRCNN.from_checkpoint) to predict "
                "attributes",
                filepath,
                ", ".join(report.skipped_attribute_layers),
            )
        self.set_log_dir(filepath)
        if not excluded and not report.missing_in_file:
            # Every layer came from the file: a train() continuing its epoch count may take its optimizer state.
            self._optimizer_state_from = os.fspath(filepath)
        return report

    @property
    def attribute_names(self) -> list[str] | None:
        """[NUM_ATTRIBUTES] attribute names by attribute index, from the training data or the loaded
        checkpoint; None for a model without an attribute head or when they are unknown."""
        names = self.checkpoint_fields.get("attribute_names")
        if not self.config.NUM_ATTRIBUTES or names is None or len(names) != self.config.NUM_ATTRIBUTES:
            return None
        return list(names)

    def attributes_above(self, result: dict, threshold: float = 0.5) -> list[list[tuple[str, float]]]:
        """One list per detection of ``result`` (a :meth:`detect` result) of (attribute name, score) with
        score >= ``threshold``, highest first (see :func:`mrcnn.attributes.attributes_above`). Attributes are
        named by their index when the model does not know their names."""
        if "attributes" not in result:
            raise ValueError("this result has no attribute scores: the model has no attribute head")
        names = self.attribute_names or [str(i) for i in range(int(self.config.NUM_ATTRIBUTES))]
        return attributes_above(result["attributes"], names, threshold)

    def metadata(self, epoch: int | None = None, epoch_logs: dict | None = None) -> CheckpointMetadata:
        """What a checkpoint of this model says about itself (see :mod:`mrcnn.metadata`)."""
        return CheckpointMetadata.from_config(
            self.config,
            class_names=self.class_names,
            class_source_ids=self.class_source_ids,
            epoch=epoch,
            epoch_logs=epoch_logs,
            **self.checkpoint_fields,
        )

    def save_weights(self, filepath: str) -> None:
        """Save weights in Matterport's Keras-2 ``.h5`` layout (atomically), with the checkpoint metadata."""
        save_weights_h5(self.keras_model, filepath, metadata=self.metadata(epoch=self.epoch or None))

    def for_inference(self, config: Config | None = None, model_dir: str | None = None) -> MaskRCNN:
        """An inference model with this model's current weights, copied in memory (no file written or read),
        and its class names and checkpoint fields. ``config``: the inference config (default: this model's
        settings with one image per batch); its layers with weights must match this model's.
        """
        if config is None:
            config = copy.copy(self.config)
            config.__dict__["_origins"] = dict(self.config.__dict__.get("_origins", {}))
            config._set_settings({"GPU_COUNT": 1, "IMAGES_PER_GPU": 1}, "for_inference")
            config.__init__()  # derived values and checks again
        model = type(self)("inference", config, model_dir or self.model_dir)
        copy_weights(self.keras_model, model.keras_model)
        model.class_names = None if self.class_names is None else list(self.class_names)
        model.class_source_ids = self.class_source_ids
        model.checkpoint_fields = dict(self.checkpoint_fields)
        model.epoch = self.epoch
        return model

    @classmethod
    def from_checkpoint(
        cls, filepath: str, mode: str = "inference", model_dir: str = "logs", config_class=None, **overrides
    ) -> MaskRCNN:
        """A model built from the config a checkpoint of this package records, with its weights loaded.

        In inference mode the batch is one image (GPU_COUNT = IMAGES_PER_GPU = 1) unless ``overrides`` say
        otherwise; ``overrides`` are Config settings. ``config_class``: the Config subclass to build (default
        :class:`Config`). Raises ValueError for a file without metadata (e.g. Matterport's): build that
        model with its config and call :meth:`load_weights`.
        """
        metadata = read_metadata(filepath)
        if metadata is None or not metadata.config:
            raise ValueError(
                f"{filepath} does not record its config (not written by this package): build the model with "
                "its Config and call load_weights()"
            )
        settings = dict(metadata.config)
        if mode == "inference":
            settings.update(GPU_COUNT=1, IMAGES_PER_GPU=1)
        settings.update(overrides)
        config = (config_class or Config).from_dict(settings)
        model = cls(mode, config, model_dir)
        model.load_weights(filepath, by_name=True)
        return model

    def get_imagenet_weights(self) -> str:
        """Path of the ResNet50 ImageNet weights in Matterport's layer names, downloaded once (checked against
        the catalogue's MD5) into Keras' cache, ``~/.keras/models`` (see :mod:`mrcnn.catalogue`).

        Raises :class:`mrcnn.download.WeightsConnectionError` (a ConnectionError) offline; its message says
        where to put a copy made elsewhere.
        """
        return IMAGENET_RESNET50.fetch(verbose=0)

    def find_last(self) -> str:
        """Path of the last checkpoint of the newest training run of this config's NAME in model_dir."""
        return find_last_checkpoint(self.model_dir, self.config.NAME)

    def set_log_dir(self, model_path: str | None = None) -> None:
        """Choose the log folder and checkpoint pattern; continue a run's folder and epoch from its checkpoint.

        With ``model_path`` a checkpoint in a run folder (Matterport's ``<name><YYYYMMDDTHHMM>`` or ours with a
        ``-k`` suffix), training continues in that folder after the file's epoch. Otherwise a new folder name
        ``<model_dir>/<name><YYYYMMDDTHHMM>`` is chosen and epochs count from 0; the folder is created by
        :meth:`claim_log_dir` when training starts, with ``-2``, ``-3``, ... appended when a run of the same
        minute has it already, so two runs never share a folder.
        """
        self.epoch = 0
        self.last_checkpoint = None
        self._log_dir_claimed = False
        # The checkpoint whose optimizer state the next train() may restore (set by load_weights).
        self._optimizer_state_from: str | None = None
        name = (self.config.NAME or "mrcnn").lower()
        match = None
        if model_path:
            match = _CHECKPOINT_RE.match(os.path.abspath(model_path).replace("\\", "/"))
        if match:
            # The file's epoch is 1-based; training continues with the next one.
            self.epoch = int(match.group(6))
            self.log_dir = os.path.dirname(model_path)
            self.last_checkpoint = model_path
            self._log_dir_claimed = True  # the run's own folder: continued, not claimed anew
        else:
            now = datetime.datetime.now()
            self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        self._set_checkpoint_path(name)

    def _set_checkpoint_path(self, name: str) -> None:
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_*epoch*.h5").replace(
            "*epoch*", "{epoch:04d}"
        )

    def claim_log_dir(self) -> str:
        """Create this run's log folder (once) and return it.

        A new run takes ``log_dir`` with ``os.mkdir``, which fails when the folder exists: then ``-2``, ``-3``,
        ... is appended until a name is free, so a run never writes into another run's folder (one started
        in the same minute, or one killed earlier). A continued run (``load_weights`` of one of its
        checkpoints) keeps its folder.
        """
        if self._log_dir_claimed:
            os.makedirs(self.log_dir, exist_ok=True)
            return self.log_dir
        os.makedirs(self.model_dir, exist_ok=True)
        base = self.log_dir
        for k in range(1, 10000):
            candidate = base if k == 1 else f"{base}-{k}"
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            self.log_dir = candidate
            break
        else:
            raise FileExistsError(f"no free run folder name {base}-k in {self.model_dir}")
        self._log_dir_claimed = True
        self._set_checkpoint_path((self.config.NAME or "mrcnn").lower())
        return self.log_dir

    # -- training ------------------------------------------------------------------------------------------

    def train(
        self,
        train_dataset,
        val_dataset,
        learning_rate: float,
        epochs: int,
        layers: str,
        augmentation=None,
        custom_callbacks: Sequence[keras.callbacks.Callback] | None = None,
        no_augmentation_sources: Sequence[str] | None = None,
        workers: int = 2,
        verbose: int = 1,
    ):
        """Train the layers named by ``layers`` up to epoch ``epochs`` (counted across calls, as Matterport).

        Args:
            train_dataset, val_dataset: prepared :class:`mrcnn.utils.Dataset` objects.
            learning_rate: SGD learning rate.
            epochs: the epoch number to stop at; training continues from ``self.epoch``.
            layers: 'heads', '3+', '4+', '5+', 'all' or a regular expression on layer names.
            augmentation: an imgaug augmenter (e.g. ``iaa.Fliplr(0.5)``) applied to training images and masks.
            custom_callbacks: extra Keras callbacks.
            no_augmentation_sources: dataset sources whose images are never augmented.
        Each step takes IMAGES_PER_GPU images per replica of ``self.strategy`` (BATCH_SIZE without one). With
        a multi-worker strategy every worker runs this same call; Keras shards the batches between them.

        After each epoch the chief writes the checkpoint (with the optimizer's state, see
        :mod:`mrcnn.optimizer_state`), then the epoch's row of ``history.csv`` (losses and learning rate);
        ``self.epoch`` and ``self.last_checkpoint`` follow. A call continuing the call that wrote the checkpoint
        ``load_weights`` loaded (same trainable variables, that call's last epoch not reached) restores that
        optimizer state (SGD momentum, iteration count); any other call starts its optimizer anew. A NaN or
        infinite loss stops training at that step (:class:`mrcnn.training.TrainingDivergedError`, naming the epoch, the step and
        the last good checkpoint) and non-finite weights are never written. Ctrl-C raises KeyboardInterrupt
        at once (a half-written checkpoint is removed), with ``self.epoch`` / ``self.last_checkpoint`` at the
        last complete checkpoint.
        Returns the Keras ``History``.
        """
        if self.mode != "training":
            raise RuntimeError("create the model in training mode to train it")
        config = self.config
        batch_size = global_batch_size(config, self.strategy)
        train_loader = TrainingLoader(
            train_dataset,
            config,
            shuffle=True,
            augmentation=augmentation,
            no_augmentation_sources=no_augmentation_sources,
            workers=workers,
            steps_per_epoch=config.STEPS_PER_EPOCH,
            initial_epoch=self.epoch,
            batch_size=batch_size,
        )
        val_loader = None
        if val_dataset is not None:
            val_loader = TrainingLoader(
                val_dataset,
                config,
                shuffle=True,
                workers=workers,
                steps_per_epoch=config.VALIDATION_STEPS,
                batch_size=batch_size,
            )

        # With several workers only the chief writes checkpoints and logs (they all hold the same weights).
        chief = is_chief(self.strategy)
        if chief:
            self.claim_log_dir()
            config.to_json(os.path.join(self.log_dir, "config.json"))
            self.prepare_run_folder(verbose)
        if verbose:
            print(f"\nStarting at epoch {self.epoch}. LR={learning_rate}\n")
            print(f"Checkpoint Path: {self.checkpoint_path}")
        set_trainable(self.keras_model, layers, verbose=0)

        with self.strategy.scope():
            trainer = TrainingModel(self.keras_model, config)
            trainer.compile(optimizer=make_optimizer(config, learning_rate), jit_compile=False)
            trainer.optimizer.build(trainer.trainable_variables)  # its slots, in the strategy's scope
            self._resume_optimizer(trainer.optimizer, verbose)
        # The training data names the classes (and attributes) the checkpoints will record (when it fits).
        attribute_names = list(getattr(train_dataset, "model_attribute_names", None) or [])
        if config.NUM_ATTRIBUTES and len(attribute_names) == config.NUM_ATTRIBUTES:
            self.checkpoint_fields["attribute_names"] = attribute_names
            source_ids = getattr(train_dataset, "attribute_source_ids", None)
            if source_ids is not None and len(source_ids) == config.NUM_ATTRIBUTES:
                self.checkpoint_fields["attribute_source_ids"] = [int(i) for i in source_ids]
        if len(getattr(train_dataset, "class_info", ())) == config.NUM_CLASSES:
            self.class_names = [str(c["name"]) for c in train_dataset.class_info]
            self.class_source_ids = [
                int(c["id"]) if isinstance(c["id"], int | np.integer) else 0 for c in train_dataset.class_info
            ]

        def saved(epoch: int, path: str) -> None:
            self.epoch, self.last_checkpoint = epoch, path

        interrupts = InterruptGuard()
        # Every worker stops on a non-finite loss (they all see it): one that went on would wait for the others.
        # With several workers only the chief writes checkpoints, history and TensorBoard logs.
        callbacks = run_callbacks(
            self.keras_model,
            interrupts,
            self.checkpoint_path if chief else None,
            last_checkpoint=lambda: self.last_checkpoint,
            on_save=saved,
            metadata=lambda epoch, row: self.metadata(epoch, epoch_logs=row),
            optimizer_state=lambda epoch: optimizer_state.capture(
                trainer.optimizer, self.keras_model, epoch=epoch, train_until=epochs, layers=str(layers)
            ),
            history_path=os.path.join(self.log_dir, HISTORY_FILE),
            log_dir=self.log_dir,
        )
        callbacks += list(custom_callbacks or [])
        with interrupts:
            history = trainer.fit(
                train_loader,
                initial_epoch=self.epoch,
                epochs=epochs,
                steps_per_epoch=config.STEPS_PER_EPOCH,
                validation_data=val_loader,
                validation_steps=config.VALIDATION_STEPS if val_loader is not None else None,
                callbacks=callbacks,
                verbose=verbose,
                # The loader orders the images of each epoch itself, from (seed, epoch). Keras' own shuffle would
                # reorder its batches with Python's global random state, which a resumed process does not share.
                shuffle=False,
            )
            interrupts.check()
        self.epoch = max(self.epoch, epochs)
        return history

    def _resume_optimizer(self, optimizer: keras.optimizers.Optimizer, verbose: int) -> None:
        """Give a freshly built ``optimizer`` the state stored in the checkpoint this model resumes from (the
        one ``load_weights`` loaded whole, when the model continues its epoch count), when that state belongs
        to the same train() call and trainable variables; otherwise it starts anew, as said in one line.
        Weights loaded for transfer (``exclude``, files of other models, epoch 0) never bring optimizer state.
        """
        source, self._optimizer_state_from = self._optimizer_state_from, None
        if source is None or not self.epoch:
            return
        state = None
        try:
            state = optimizer_state.read(source)
        except OSError as e:
            why = f"its optimizer state cannot be read ({e})"
        else:
            why = optimizer_state.resume_decision(state, self.epoch)
            if why is None:
                why = optimizer_state.restore(optimizer, self.keras_model, state)
        if why is None:
            line = (
                f"Optimizer: momentum of {len(state.variable_names)} variables and iteration count "
                f"{state.iterations} restored from {source}"
            )
        else:
            line = f"Optimizer: starts anew (momentum zero), not from {source}: {why}"
        if verbose:
            print(line)
        elif why is not None and not optimizer_state.call_ended(state):
            logger.warning(line)  # a resume that cannot continue the optimizer: said even when quiet
        else:
            logger.info(line)

    def prepare_run_folder(self, verbose: int = 1) -> None:
        """Before training in ``log_dir`` (``train`` calls it; call it when resuming a run without training):
        remove checkpoint files a killed run left half-written (``.tmp``), and when continuing a run make its
        history.csv hold exactly the rows of epochs 1 .. self.epoch, recovering a row lost to a kill from its
        checkpoint (see :mod:`mrcnn.history`)."""
        for entry in _listdir(self.log_dir):
            if entry.endswith(".tmp") and entry.startswith(("mask_rcnn_", HISTORY_FILE)):
                try:
                    os.remove(os.path.join(self.log_dir, entry))
                except OSError:
                    pass
        history_path = os.path.join(self.log_dir, HISTORY_FILE)
        if not self.epoch and not os.path.exists(history_path):
            return

        def row_of_checkpoint(epoch: int):
            path = self.checkpoint_path.format(epoch=epoch + 1)
            try:
                metadata = read_metadata(path)
            except OSError:
                return None
            return metadata.epoch_logs if metadata is not None else None

        for note in recover_history(history_path, self.epoch, row_of_checkpoint):
            if verbose:
                print(f"{history_path}: {note}")

    # -- inference -----------------------------------------------------------------------------------------

    def mold_inputs(self, images: Sequence[np.ndarray]):
        """Resize and normalise images for the network (the image pipeline's :func:`~mrcnn.pipeline.mold_images`).

        Returns molded_images [N, H, W, C] float32, image_metas [N, META], windows [N, (y1, x1, y2, x2)] pixels.
        """
        batch = mold_images(images, self.config)
        return batch.images, batch.meta_vectors, batch.windows

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """Turn one image's detections into Matterport's output in original image coordinates.

        Args:
            detections: [D, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
            mrcnn_mask: [D, mh, mw, NUM_CLASSES] or [D, mh, mw] (already the detected class's mask).
            original_image_shape: [H, W, C] before resizing. image_shape: [H, W, C] after.
            window: [y1, x1, y2, x2] pixels in the resized image where the real image is.
        Returns boxes [N, 4] int32 pixels, class_ids [N], scores [N], masks [H, W, N] bool.
        """
        return unmold_one_image(detections, mrcnn_mask, original_image_shape, image_shape, window)

    def _predict(self, molded_images, image_metas, anchors):
        if self._predict_fn is None:
            model = self.keras_model

            @tf.function(reduce_retracing=True)
            def predict(images, metas, anchors):
                outputs = model([images, metas, anchors], training=False)
                detections, mrcnn_mask = outputs[0], outputs[3]
                # Keep only each detection's own class mask: far less to copy out of the graph.
                class_ids = tf.cast(detections[..., 4], tf.int32)
                masks = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]), class_ids, axis=2, batch_dims=2)
                # With an attribute head: mrcnn_attr [B, D, NUM_ATTRIBUTES], the last output.
                return (detections, masks, *outputs[7:8])

            self._predict_fn = predict
        return self._predict_fn(molded_images, image_metas, anchors)

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detect instances in images (any number; run in batches of BATCH_SIZE).

        images: [H, W, 3] uint8 RGB each; other layouts and types are converted with a warning or refused
        with an error naming the image's index (see :func:`mrcnn.data.dataset.check_image_for_detection`).
        Returns one dict per image: rois [N, (y1, x1, y2, x2)] pixels, class_ids [N], scores [N],
        masks [H, W, N] bool, all in the image's original coordinates; with an attribute head
        (NUM_ATTRIBUTES = A > 0) also attributes [N, A] float32, each detection's attribute probabilities
        (names: :attr:`attribute_names`; :meth:`attributes_above` lists those above a threshold).
        """
        if self.mode != "inference":
            raise RuntimeError("create the model in inference mode to detect")
        # Each image as [H, W, 3] uint8, converted with a warning or refused naming its index.
        images = [check_image_for_detection(image, i) for i, image in enumerate(images)]
        if not images:
            return []
        results = []
        step = self.config.BATCH_SIZE
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            if verbose:
                print(f"Processing {len(chunk)} images")
                for image in chunk:
                    log("image", image)
            results.extend(self._detect_batch(mold_images(chunk, self.config)))
        return results

    def detect_molded(
        self, molded_images: np.ndarray, image_metas: np.ndarray, verbose: int = 0
    ) -> list[dict]:
        """Detect on images already molded (resized and normalised), e.g. from load_image_gt + mold_image."""
        if self.mode != "inference":
            raise RuntimeError("create the model in inference mode to detect")
        molded_images = np.asarray(molded_images, np.float32)
        image_metas = np.asarray(image_metas, np.float32)
        # Results in the molded images' own coordinates: the whole image is the window.
        shape = molded_images.shape[1:]
        metas = [ImageMeta(0, shape, shape, (0, 0) + shape[:2], 1) for _ in molded_images]
        return self._detect_batch(MoldedBatch(molded_images, metas), image_metas)

    def _detect_batch(self, batch: MoldedBatch, meta_vectors: np.ndarray | None = None) -> list[dict]:
        """Run the network on a molded batch and unmold each image's detections (``meta_vectors``: the
        network's image_meta input, by default the batch's metas)."""
        molded_images = batch.images
        if meta_vectors is None:
            meta_vectors = batch.meta_vectors
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.broadcast_to(anchors, (len(molded_images), *anchors.shape))
        detections, masks, *attributes = self._predict(
            tf.constant(molded_images), tf.constant(meta_vectors), tf.constant(anchors)
        )
        detections, masks = detections.numpy(), masks.numpy()
        attributes = attributes[0].numpy() if attributes else None
        results = []
        for i, meta in enumerate(batch.metas):
            rois, class_ids, scores, full_masks = self.unmold_detections(
                detections[i], masks[i], meta.original_shape, meta.image_shape, meta.window
            )
            result = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full_masks}
            if attributes is not None:
                rows = kept_detection_rows(detections[i], meta.original_shape, meta.image_shape, meta.window)
                result["attributes"] = attributes[i][rows].astype(np.float32)
            results.append(result)
        return results

    def export(self, path: str, format: str = "saved_model") -> str:
        """Export the whole inference pipeline (uint8 image in; boxes, class ids, scores, full-image masks out,
        and the detections' attribute scores with an attribute head).

        format: "saved_model" (a folder), "tflite" or "onnx" (a file). See :mod:`mrcnn.export`.
        """
        from mrcnn.export import export_model  # TFLite/ONNX converters load only when exporting

        return export_model(self, path, format)

    def run_graph(self, images, outputs, image_metas=None):
        """Run the inference graph and return the named outputs of the listed layers, as Matterport's notebooks.

        ``outputs``: list of (name, layer_name or KerasTensor) pairs. Returns a dict name -> numpy array.
        """
        model = self.keras_model
        tensors = []
        for _, target in outputs:
            tensors.append(model.get_layer(target).output if isinstance(target, str) else target)
        probe = keras.Model(model.inputs, tensors)
        molded_images, metas, _ = self.mold_inputs(images)
        if image_metas is not None:
            metas = image_metas
        anchors = np.broadcast_to(
            self.get_anchors(molded_images.shape[1:]),
            (len(images),) + self.get_anchors(molded_images.shape[1:]).shape,
        )
        values = probe([molded_images, metas, anchors], training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        return {name: np.asarray(v) for (name, _), v in zip(outputs, values)}


# The rest of Matterport's public names of mrcnn/model.py -> "module:attribute" where each lives now. They are
# imported on first access (PEP 562), so importing this module loads nothing more for them.
# mrcnn.matterport_compat holds adapters for those whose signature or meaning differs from ours.
_COMPAT = "mrcnn.matterport_compat"
_MATTERPORT_NAMES = {
    "BatchNorm": "mrcnn.modeling.layers:BatchNorm",
    "compute_backbone_shapes": "mrcnn.anchors:compute_backbone_shapes",
    "identity_block": f"{_COMPAT}:identity_block",
    "conv_block": f"{_COMPAT}:conv_block",
    "resnet_graph": f"{_COMPAT}:resnet_graph",
    "apply_box_deltas_graph": "mrcnn.modeling.graph_utils:apply_box_deltas_graph",
    "clip_boxes_graph": "mrcnn.modeling.graph_utils:clip_boxes_graph",
    "ProposalLayer": f"{_COMPAT}:ProposalLayer",
    "log2_graph": f"{_COMPAT}:log2_graph",
    "PyramidROIAlign": "mrcnn.modeling.roi_align:PyramidROIAlign",
    "overlaps_graph": "mrcnn.modeling.graph_utils:overlaps_graph",
    "detection_targets_graph": f"{_COMPAT}:detection_targets_graph",
    "DetectionTargetLayer": f"{_COMPAT}:DetectionTargetLayer",
    "refine_detections_graph": f"{_COMPAT}:refine_detections_graph",
    "DetectionLayer": f"{_COMPAT}:DetectionLayer",
    "rpn_graph": "mrcnn.modeling.rpn:rpn_graph",
    "build_rpn_model": "mrcnn.modeling.rpn:build_rpn_model",
    "fpn_classifier_graph": "mrcnn.modeling.heads:fpn_classifier_graph",
    "build_fpn_mask_graph": "mrcnn.modeling.heads:build_fpn_mask_graph",
    "smooth_l1_loss": "mrcnn.modeling.losses:smooth_l1_loss",
    "rpn_class_loss_graph": "mrcnn.modeling.losses:rpn_class_loss_graph",
    "rpn_bbox_loss_graph": f"{_COMPAT}:rpn_bbox_loss_graph",
    "mrcnn_class_loss_graph": "mrcnn.modeling.losses:mrcnn_class_loss_graph",
    "mrcnn_bbox_loss_graph": "mrcnn.modeling.losses:mrcnn_bbox_loss_graph",
    "mrcnn_mask_loss_graph": "mrcnn.modeling.losses:mrcnn_mask_loss_graph",
    "build_detection_targets": "mrcnn.data.ground_truth:build_detection_targets",
    "generate_random_rois": "mrcnn.data.ground_truth:generate_random_rois",
    "parse_image_meta_graph": "mrcnn.modeling.graph_utils:parse_image_meta_graph",
    "trim_zeros_graph": "mrcnn.modeling.graph_utils:trim_zeros_graph",
    "batch_pack_graph": f"{_COMPAT}:batch_pack_graph",
    "norm_boxes_graph": "mrcnn.modeling.graph_utils:norm_boxes_graph",
    "denorm_boxes_graph": "mrcnn.modeling.graph_utils:denorm_boxes_graph",
}


def __getattr__(name: str):
    target = _MATTERPORT_NAMES.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = target.split(":")
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MATTERPORT_NAMES))


__all__ = [
    "MaskRCNN",
    "find_last_checkpoint",
    "run_checkpoints",
    "run_folders",
    "layer_regex",
    "load_image_gt",
    "build_rpn_targets",
    "data_generator",
    "compose_image_meta",
    "parse_image_meta",
    "mold_image",
    "unmold_image",
    "log",
    *_MATTERPORT_NAMES,
]

"""Hook specifications: how plugins add stages, datasets, segmenters and label metrics.

Every hook is a *register callback* (as in datasette and llm): msaug calls it with a
typed registry object and the plugin registers what it provides. msaug's own built-in
stages and datasets go through the very same hooks.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, exposed
through an entry point of group ``msaug``::

    [project.entry-points.msaug]
    mydomain = "msaug_mydomain.plugin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from msaug.plugins import DatasetRegistry, LabelMetricRegistry, SegmenterRegistry, StageRegistry

PROJECT = "msaug"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def msaug_register_stages(register: StageRegistry) -> None:
    """Register stage classes.

    :param register: the stage registry; call ``register(StageClass, name="domain.stage")``
        (a :class:`msaug.Stage` subclass; ``name`` defaults to ``StageClass.name``) once for
        every stage the plugin provides.
    """


@hookspec
def msaug_register_datasets(register: DatasetRegistry) -> None:
    """Register dataset factories.

    :param register: the dataset registry; call ``register(name, factory, description=...)``
        where ``factory(config) -> Dataset`` receives the pipeline's validated ``data``
        block (:class:`msaug.pipeline.schema.DataConfig`) and returns a
        :class:`msaug.Dataset` whose samples are loaded at ``config.size``.
    """


@hookspec
def msaug_register_segmenters(register: SegmenterRegistry) -> None:
    """Register segmentation network builders.

    :param register: the segmenter registry; call ``register(name, builder, description=...)``
        where ``builder(in_channels, classes, **options) -> torch.nn.Module`` returns a
        network mapping ``[B, C, H, W]`` images to ``[B, K, H, W]`` logits.
    """


@hookspec
def msaug_register_label_metrics(register: LabelMetricRegistry) -> None:
    """Register label-map metrics reported for real and generated label maps.

    :param register: the label metric registry; call ``register(domain, name, fn)`` where
        ``fn(labels, spec) -> dict[str, float]`` receives a ``[N, K, H, W]`` float tensor of
        hard label maps and the :class:`msaug.DataSpec`, and returns summary figures
        (e.g. an anatomical plausibility rate). ``domain`` selects the datasets it applies
        to (``DataSpec.domain``); ``"*"`` applies to every domain.
    """

"""Per-stage measurement: which stage of the chain is the weak link?

The end-to-end figures of a run (segmentation Dice, pair QC, label realism of the product)
say *that* a chain is weak, not *where*. Each stage is therefore measured on its own, on the
**held-out real test cases** (never the training cases), against a reference computed in
the same run, and gets a *share of reference*: its figure divided by the reference figure
(1 means as good as the reference; the stage with the lowest share is the weak link).

* **Label generator** (``Noise -> Label``, and the label output of a joint
  ``Noise -> (Image, Label)`` stage): ``n = min(generate.count, 64)`` maps generated with the
  run's generation seed at the stage's own label size, against the held-out real maps at
  that size: nearest-neighbour IoU precision and coverage, diversity, connected components
  per map per foreground class and the 1-D Wasserstein distance of their distribution to the
  held-out maps' (:mod:`msaug.segment.label_realism`). The same figures for two references:
  the *training* maps (real maps of other cases) and an affine + elastic *jitter* of the
  training maps (the classic-augmentation baseline a generator must beat). Share: the
  stage's coverage over the real maps' coverage.
* **Label -> label** (upscaler): fed the held-out real input maps; mean foreground IoU of each
  output with the held-out real target map (faithfulness) and components per map. Reference:
  plain label-safe interpolation of the input to the target size
  (:func:`msaug.resize.resize_label`). Share: IoU over the interpolation's IoU.
* **Label -> image** (translator): fed the held-out real label maps; the real-trained
  reference segmenter segments the images and its Dice against those labels says how
  faithful they are (:func:`msaug.segment.qc.score_pairs`). Reference: the same segmenter on
  the held-out *real* images at the same size (the ceiling). Share: the ratio.
* **Joint** ``Noise -> (Image, Label)``: the label generator figures, plus the reference
  segmenter's Dice on its images against its own labels, over its Dice on held-out real
  images. Its share is the lower of the two (coverage share, image share).
* Any other kind gets a row that says it is not measured, and why.

A probe that raises is reported with its error; it never fails the run. Everything runs
without gradients on at most 64 cases, in batches, on the run's device.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from msaug.augment import random_warp_grid, warp_label
from msaug.modality import Image, Label, Noise
from msaug.resize import resize_label
from msaug.rng import BatchRNG
from msaug.sample import Dataset, DataSpec, Sample
from msaug.segment.data import SegmentationTensors
from msaug.segment.label_realism import compare_shapes, label_diversity, nearest_neighbour_iou
from msaug.segment.metrics import foreground_classes
from msaug.segment.qc import score_pairs
from msaug.segment.segmenter import Segmenter
from msaug.segment.similarity import label_iou_matrix
from msaug.stage import Pairs, Stage

#: at most this many generated maps, held-out cases and training maps per stage
MAX_CASES = 64
#: at most this many training maps are the jitter's sources
TRAINING_MAPS = 4 * MAX_CASES
#: label maps are compared (NN-IoU, diversity) at this size or the stage's own, whichever is smaller
COMPARE_SIZE = 64
#: random streams of the jitter reference, apart from the stages' own (stream = stage position)
JITTER_STREAM = 1_000


class ProbedStage(Protocol):
    """One stage of a composed chain, as probed (:class:`msaug.pipeline.composer.ComposedStage` is one)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def use(self) -> str: ...
    @property
    def stage(self) -> Stage: ...
    @property
    def label(self) -> str: ...


class ProbedChain(Protocol):
    """A composed chain, as probed (:class:`msaug.pipeline.composer.Chain` is one): its stages in order."""

    @property
    def stages(self) -> Sequence[ProbedStage]: ...


LABEL_GENERATOR = "label generator"
JOINT = "joint image + label generator"
LABEL_TO_LABEL = "label → label"
TRANSLATOR = "label → image"
OTHER = "other"


def stage_kind(stage: Any) -> str:
    """Which probe measures ``stage``, from its declared input and outputs."""
    inp, outs = stage.input, stage.outputs
    labels = [o for o in outs if isinstance(o, Label)]
    images = [o for o in outs if isinstance(o, Image)]
    if isinstance(inp, Noise):
        if len(outs) == 1 and labels:
            return LABEL_GENERATOR
        if len(outs) == 2 and len(labels) == 1 and len(images) == 1:
            return JOINT
    elif isinstance(inp, Label):
        if len(outs) == 1 and labels:
            return LABEL_TO_LABEL
        if len(outs) == 1 and images:
            return TRANSLATOR
    return OTHER


def _r(value: Any, digits: int = 5) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _share(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return _r(value / reference, 4)


def label_spec(label: Label, spec: DataSpec) -> DataSpec:
    """The data spec of a stage's label modality (its size and downsampling policy); every other field is ``spec``'s."""
    return spec.with_label(label)


@torch.no_grad()
def run_stage(cs: ProbedStage, x: torch.Tensor | None, n: int, seed: int, device: torch.device, batch_size: int) -> tuple[torch.Tensor, ...]:
    """``cs.stage`` on ``n`` rows of ``x`` (or on noise), seeded as generation seeds it; outputs on CPU."""
    stage = cs.stage
    stage.to(device)
    if hasattr(stage, "eval"):
        stage.eval()
    parts = []
    for start in range(0, n, batch_size):
        indices = list(range(start, min(n, start + batch_size)))
        rng = BatchRNG.for_indices(seed, indices, stream=cs.index)
        xb = None if x is None else x[start : start + len(indices)].to(device)
        out = stage.generate(xb, rng)
        parts.append(tuple(o.float().cpu() for o in (out if isinstance(out, tuple) else (out,))))
    return tuple(torch.cat(column) for column in zip(*parts))


def jitter_maps(maps: torch.Tensor, n: int, seed: int, encoding: str, stream: int = JITTER_STREAM) -> torch.Tensor:
    """``n`` randomly deformed copies of ``maps`` ``[M,K,S,S]``: the classic-augmentation baseline.

    Map *i* is a training map drawn by its own seeded stream and warped by
    :func:`msaug.augment.random_warp_grid` (its defaults: up to 10 degrees rotation, 8 % zoom,
    4 % shift and a smooth elastic field) with label-safe resampling
    (:func:`msaug.augment.warp_label`: bilinear per class, then hardened), so one-hot and
    multilabel maps stay valid.
    """
    rng = BatchRNG.for_indices(seed, range(n), stream=stream)
    size = maps.shape[-1]
    out = []
    for i in range(n):
        g = rng.numpy(i)
        source = maps[int(g.integers(len(maps)))].float()
        out.append(warp_label(source, random_warp_grid(g, size), encoding))
    return torch.stack(out)


def label_set_figures(maps: torch.Tensor, held_out: torch.Tensor, spec: DataSpec) -> dict[str, Any]:
    """NN-IoU precision/coverage, diversity and components of ``maps`` against the held-out maps."""
    size = min(COMPARE_SIZE, spec.size)
    nn_iou = nearest_neighbour_iou(maps, held_out, spec, size)
    figures = {"maps": int(maps.shape[0]), "precision": _r(nn_iou["precision"]), "coverage": _r(nn_iou["coverage"]),
               "diversity": _r(label_diversity(maps, spec, size))}
    return {**figures, **components(maps, held_out, spec)}


def components(maps: torch.Tensor, reference: torch.Tensor, spec: DataSpec) -> dict[str, Any]:
    """Connected components per map per foreground class of ``maps``, and the W1 distance to ``reference``'s."""
    shapes = compare_shapes(maps, reference, spec)
    per_class = {c: {"mean": _r(s["components"]["synthetic"]["mean"]), "wasserstein": _r(s["components"]["wasserstein"])}
                 for c, s in shapes.items()}
    means = [v["mean"] for v in per_class.values() if v["mean"] is not None]
    distances = [v["wasserstein"] for v in per_class.values() if v["wasserstein"] is not None]
    return {"components": per_class, "components_mean": _r(np.mean(means)) if means else None,
            "components_wasserstein": _r(np.mean(distances)) if distances else None}


def held_out_figures(held_out: torch.Tensor, spec: DataSpec) -> dict[str, Any]:
    """What the held-out maps themselves look like (their diversity and components)."""
    size = min(COMPARE_SIZE, spec.size)
    own = components(held_out, held_out, spec)
    return {"maps": int(held_out.shape[0]), "diversity": _r(label_diversity(held_out, spec, size)),
            "components": {c: {"mean": v["mean"]} for c, v in own["components"].items()}, "components_mean": own["components_mean"]}


def mean_dice(segmenter: Segmenter, images: torch.Tensor, labels: torch.Tensor, roi: torch.Tensor | None, patches: bool = False) -> float:
    """Mean over cases of the reference segmenter's foreground Dice on ``images`` against ``labels``.

    ``patches``: the images are native-resolution patches, segmented at their own scale.
    """
    if roi is None:
        roi = torch.ones(labels.shape[0], 1, *labels.shape[-2:], dtype=torch.bool)
    scores = score_pairs(segmenter, SegmentationTensors(images, labels, roi, [str(i) for i in range(len(labels))], patches))
    return float(np.mean(scores))


def roi_at(roi: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """Regions of interest ``[N,H,W]`` (bool) as ``[N,1,size,size]`` by nearest resampling."""
    if roi is None:
        return None
    return F.interpolate(roi[:, None].float(), size=(size, size), mode="nearest") > 0.5


class Probe:
    """What every probe needs: the real cases, the reference segmenter, seeds and budgets."""

    def __init__(self, spec: DataSpec, train: Dataset, test: Sequence[Sample], reference: Segmenter | None,
                 reference_note: str | None, device: torch.device, seed: int, count: int, batch_size: int):
        self.spec, self.train_set, self.test = spec, train, list(test)
        self.reference, self.reference_note = reference, reference_note
        self.device, self.seed, self.batch_size = torch.device(device), seed, batch_size
        self.n = max(1, min(count, MAX_CASES))

    @functools.cached_property
    def train(self) -> list[Sample]:
        """At most ``TRAINING_MAPS`` training cases, read only when a label-generating stage needs them."""
        return [self.train_set[i] for i in range(min(len(self.train_set), TRAINING_MAPS))]

    def pairs(self, cs: ProbedStage, samples: Sequence[Sample]) -> Pairs:
        return Pairs.from_samples(cs.stage, samples, self.spec, cs.label)

    def segmenter(self) -> Segmenter:
        if self.reference is None:
            raise NotMeasured(self.reference_note or "no real-trained reference segmenter")
        return self.reference

    def label_generator(self, cs: ProbedStage) -> dict[str, Any]:
        stage = cs.stage
        at = next(o for o, m in enumerate(stage.outputs) if isinstance(m, Label))
        label = stage.outputs[at]
        spec = label_spec(label, self.spec)
        held_pairs = self.pairs(cs, self.test)
        held = _output(held_pairs.targets, at)
        train = _output(self.pairs(cs, self.train).targets, at)
        generated = run_stage(cs, None, self.n, self.seed, self.device, self.batch_size)
        figures = {
            "stage": label_set_figures(generated[at], held, spec),
            "real_other_cases": label_set_figures(train[: self.n], held, spec),
            "jitter": label_set_figures(jitter_maps(train, self.n, self.seed, label.encoding, JITTER_STREAM + cs.index), held, spec),
            "held_out": held_out_figures(held, spec),
        }
        row: dict[str, Any] = {
            "size": label.size,
            "figures": figures,
            "figure": "NN-IoU coverage of the held-out maps by the stage's generated maps",
            "value": figures["stage"]["coverage"],
            "reference": "real maps of other cases (the training maps)",
            "reference_value": figures["real_other_cases"]["coverage"],
            "beats_jitter": None if figures["jitter"]["coverage"] is None or figures["stage"]["coverage"] is None
            else figures["stage"]["coverage"] > figures["jitter"]["coverage"],
        }
        row["share"] = _share(row["value"], row["reference_value"])
        if stage_kind(stage) == JOINT:
            self._joint_images(cs, row, generated, held_pairs, at)
        return row

    def _joint_images(self, cs: ProbedStage, row: dict[str, Any], generated: tuple[torch.Tensor, ...], held_pairs: Any, at: int) -> None:
        """A joint stage's image figures: own-label Dice of its pairs over real-image Dice; its share is the lower one."""
        segmenter = self.segmenter()
        image_at = 1 - at
        own = mean_dice(segmenter, generated[image_at], generated[at], None, self.spec.patches)
        held_images, held_labels = _output(held_pairs.targets, image_at), _output(held_pairs.targets, at)
        if held_images is None:
            raise NotMeasured("the held-out cases have no images to score the reference segmenter on")
        real = mean_dice(segmenter, held_images, held_labels, roi_at(held_pairs.roi, held_labels.shape[-1]), self.spec.patches)
        row["figures"]["image"] = {"own_label_dice": _r(own), "real_image_dice": _r(real), "share": _share(own, real)}
        label_share, image_share = row["share"], row["figures"]["image"]["share"]
        if image_share is not None and (label_share is None or image_share < label_share):
            row.update(figure="Dice of the reference segmenter on the stage's images against its own labels", value=_r(own),
                       reference="the same segmenter on held-out real images", reference_value=_r(real), share=image_share)

    def label_to_label(self, cs: ProbedStage) -> dict[str, Any]:
        output = cs.stage.outputs[0]
        assert isinstance(output, Label)
        spec = label_spec(output, self.spec)
        pairs = self.pairs(cs, self.test)
        inputs, targets = pairs.inputs, pairs.targets
        outputs = run_stage(cs, inputs, len(inputs), self.seed, self.device, self.batch_size)[0]
        interpolated = resize_label(inputs, output.size, output.encoding, output.downsample)
        figures = {
            "stage": {"iou": _r(paired_iou(outputs, targets, spec)), **components(outputs, targets, spec)},
            "interpolation": {"iou": _r(paired_iou(interpolated, targets, spec)), **components(interpolated, targets, spec)},
            "held_out": held_out_figures(targets, spec),
        }
        row = {
            "size": output.size,
            "input_size": int(inputs.shape[-1]),
            "figures": figures,
            "figure": "mean foreground IoU of each output with the held-out real target map",
            "value": figures["stage"]["iou"],
            "reference": "label-safe interpolation of the input to the target size",
            "reference_value": figures["interpolation"]["iou"],
        }
        return {**row, "share": _share(row["value"], row["reference_value"])}

    def translator(self, cs: ProbedStage) -> dict[str, Any]:
        segmenter = self.segmenter()
        if any(s.image is None for s in self.test):
            raise NotMeasured("the held-out cases have no images (labels-only data): there is no real image to compare with")
        pairs = self.pairs(cs, self.test)
        inputs, real = pairs.inputs, pairs.targets
        generated = run_stage(cs, inputs, len(inputs), self.seed, self.device, self.batch_size)[0]
        size = generated.shape[-1]
        labels = resize_label(inputs, size, self.spec.encoding, self.spec.label_downsample)
        roi = roi_at(pairs.roi, size)
        translated = mean_dice(segmenter, generated, labels, roi, self.spec.patches)
        ceiling = mean_dice(segmenter, real, labels, roi, self.spec.patches)
        row = {
            "size": size,
            "figures": {"stage": {"dice": _r(translated)}, "real_images": {"dice": _r(ceiling)}},
            "figure": "Dice of the reference segmenter on the images made from held-out real labels, against those labels",
            "value": _r(translated),
            "reference": "the same segmenter on the held-out real images (the ceiling)",
            "reference_value": _r(ceiling),
            "segmenter": repr(segmenter),
        }
        return {**row, "share": _share(translated, ceiling)}

    def measure(self, cs: ProbedStage) -> dict[str, Any]:
        """One stage's row; a probe that raises gives a row with its error instead."""
        kind = stage_kind(cs.stage)
        row: dict[str, Any] = {"stage": cs.index + 1, "name": cs.name, "use": cs.use, "kind": kind, "input": str(cs.stage.input),
                               "outputs": [str(m) for m in cs.stage.outputs]}
        started = time.monotonic()
        try:
            if kind == OTHER:
                raise NotMeasured(f"no probe measures a {cs.stage.input} → {' + '.join(row['outputs'])} stage "
                                  "(probes exist for noise → label, noise → image + label, label → label and label → image)")
            probe = {LABEL_GENERATOR: self.label_generator, JOINT: self.label_generator,
                     LABEL_TO_LABEL: self.label_to_label, TRANSLATOR: self.translator}[kind]
            row.update(probe(cs))
        except NotMeasured as exc:
            row["not_measured"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failing probe must not cost the run its report
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = round(time.monotonic() - started, 3)
        return row


class NotMeasured(Exception):
    """A stage the probes cannot measure in this run, with the reason (not an error)."""


def _output(targets: Any, at: int) -> Any:
    return targets[at] if isinstance(targets, tuple) else targets


def paired_iou(outputs: torch.Tensor, targets: torch.Tensor, spec: DataSpec) -> float:
    """Mean over cases of the foreground IoU of ``outputs[i]`` with ``targets[i]``, at the targets' size."""
    fg = foreground_classes(spec.classes, spec.encoding)
    size = targets.shape[-1]
    values = [float(label_iou_matrix(outputs[i : i + 1], targets[i : i + 1], fg, spec.encoding, size, spec.label_downsample)[0, 0])
              for i in range(len(targets))]
    return float(np.mean(values))


def weak_link(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured stage with the lowest share of reference (``None`` when no stage has one)."""
    measured = [r for r in rows if r.get("share") is not None]
    if not measured:
        return None
    worst = min(measured, key=lambda r: r["share"])
    return {"stage": worst["stage"], "name": worst["name"], "use": worst["use"], "share": worst["share"], "figure": worst["figure"]}


def probe_stages(chain: ProbedChain, spec: DataSpec, train: Dataset, test: Dataset, device: torch.device | str, seed: int, count: int,
                 batch_size: int = 16, reference: Segmenter | None = None, reference_note: str | None = None) -> dict[str, Any]:
    """Measure every stage of ``chain`` on the held-out cases ``test`` (see the module docstring); JSON-able."""
    started = time.monotonic()
    test_samples = [test[i] for i in range(min(len(test), MAX_CASES))]
    if not test_samples:
        return {"rows": [], "weak_link": None, "not_measured": "the real test split is empty"}
    probe = Probe(spec, train, test_samples, reference, reference_note, torch.device(device), seed, count, batch_size)
    rows = [probe.measure(cs) for cs in chain.stages]
    result = {"held_out_cases": len(test_samples), "generated_maps": probe.n, "seed": seed,
              "compare_size": COMPARE_SIZE, "rows": rows, "weak_link": weak_link(rows), "seconds": round(time.monotonic() - started, 3)}
    if spec.patches:  # the held-out "cases" are native-resolution patches (data.crops): of how many cases
        result["patches_of"] = len({s.meta.get("crop_of", s.id) for s in test_samples})
    return result


def load_reference(folder: Path, device: torch.device | str) -> tuple[Segmenter | None, str | None]:
    """The real-trained segmenter of an evaluation, or ``None`` and why there is none."""
    if not (folder / "segmenter.json").is_file():
        return None, f"no real-trained segmenter at {folder} (the evaluation trains one when `real` is a protocol or pairs were generated)"
    return Segmenter.load(folder, device), None


# ---- Markdown ------------------------------------------------------------------------------

def _f(value: Any, fmt: str = ".3f") -> str:
    return "–" if value is None else f"{value:{fmt}}"


def _per_class(figures: dict[str, Any], key: str) -> str:
    values = [v.get(key) for v in figures.get("components", {}).values()]
    return ", ".join(_f(v, ".2f") for v in values) or "–"


def _stage_name(row: dict[str, Any]) -> str:
    return f"{row['stage']} {row['use']}"


def format_stage_table(stages: dict[str, Any]) -> str:
    """The per-stage table for report.md: one summary row per stage, the weak link, then each stage's figures."""
    lines = ["## Stages measured on held-out real cases", ""]
    if stages.get("error") or stages.get("not_measured"):
        return "\n".join([*lines, f"Not measured: {stages.get('error') or stages.get('not_measured')}", ""])
    held_out = f"{stages['held_out_cases']} held-out real test cases"
    if stages.get("patches_of"):
        held_out = f"{stages['held_out_cases']} native-resolution patches of {stages['patches_of']} held-out real test cases"
    lines += [
        f"Each stage on its own, on {held_out} (never trained on): label and "
        f"image stages are fed the held-out *real* inputs; noise-input stages generate {stages['generated_maps']} maps "
        f"(generation seed {stages['seed']}). *Share of reference* = the stage's figure / the reference figure from the "
        "same run (1: as good as the reference); the lowest share is the weak link.",
        "",
        "| stage | kind | figure | stage's value | reference | reference value | share of reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in stages["rows"]:
        if "value" not in row:
            why = f"error: {row['error']}" if row.get("error") else f"not measured: {row.get('not_measured')}"
            lines.append(f"| {_stage_name(row)} | {row['kind']} | {why} | – | – | – | – |")
            continue
        lines.append(f"| {_stage_name(row)} | {row['kind']} | {row['figure']} | {_f(row['value'])} | {row['reference']} "
                     f"| {_f(row['reference_value'])} | {_f(row['share'], '.2f')} |")
    link = stages.get("weak_link")
    lines += ["", f"**Weak link**: stage {link['stage']} {link['use']} (share of reference {link['share']:.2f}; {link['figure']})."
              if link else "**Weak link**: none named (no stage could be measured against its reference).", ""]
    for row in stages["rows"]:
        lines += _details(row)
    return "\n".join(lines)


def _details(row: dict[str, Any]) -> list[str]:
    figures = row.get("figures")
    if not figures:
        return []
    head = f"### Stage {_stage_name(row)} ({row['kind']}, {row['size']} px)"
    if row["kind"] in (LABEL_GENERATOR, JOINT):
        compare = min(COMPARE_SIZE, row["size"])
        lines = [head, "", f"Against the held-out real maps; NN-IoU and diversity at {compare} px, components at {row['size']} px, "
                 "per foreground class. Diversity: mean IoU between distinct maps of a set (lower is more varied).", "",
                 "| maps | n | NN-IoU precision | NN-IoU coverage | diversity | components per map | W1 of components to held-out |",
                 "|---|---|---|---|---|---|---|"]
        for key, name in (("stage", "generated by the stage"), ("real_other_cases", "real, other cases (training maps)"),
                          ("jitter", "jitter of the training maps (affine + elastic)")):
            f = figures[key]
            lines.append(f"| {name} | {f['maps']} | {_f(f['precision'])} | {_f(f['coverage'])} | {_f(f['diversity'])} "
                         f"| {_per_class(f, 'mean')} | {_per_class(f, 'wasserstein')} |")
        h = figures["held_out"]
        lines.append(f"| held-out real maps | {h['maps']} | – | – | {_f(h['diversity'])} | {_per_class(h, 'mean')} | – |")
        if row.get("beats_jitter") is not None:
            lines += ["", "The stage's coverage is " + ("above" if row["beats_jitter"] else "not above") + " the jitter baseline's."]
        image = figures.get("image")
        if image:
            lines += ["", f"Images: reference-segmenter Dice against the stage's own labels {_f(image['own_label_dice'])}, "
                      f"on held-out real images {_f(image['real_image_dice'])} (share {_f(image['share'], '.2f')})."]
        return [*lines, ""]
    if row["kind"] == LABEL_TO_LABEL:
        lines = [head, "", f"Fed the held-out real {row['input_size']} px maps; compared with the held-out real {row['size']} px maps.", "",
                 "| maps | mean foreground IoU with the target | components per map | W1 of components to targets |", "|---|---|---|---|"]
        for key, name in (("stage", "stage output"), ("interpolation", "interpolation of the input")):
            f = figures[key]
            lines.append(f"| {name} | {_f(f['iou'])} | {_per_class(f, 'mean')} | {_per_class(f, 'wasserstein')} |")
        lines.append(f"| held-out targets | – | {_per_class(figures['held_out'], 'mean')} | – |")
        return [*lines, ""]
    return [head, "", f"Reference segmenter {row.get('segmenter', '')}: Dice on the images made from the held-out real labels "
            f"{_f(figures['stage']['dice'])}; on the held-out real images {_f(figures['real_images']['dice'])} "
            f"(share {_f(row['share'], '.2f')}).", ""]


# ---- msaug compare: the table of one arm over its seeds --------------------------------------

def _spread(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # sample std over seeds, as msaug compare's other figures
    return {"mean": _r(np.mean(v)) if v else None, "std": _r(std) if v else None, "n": len(v)}


def summarize_stage_tables(tables: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One arm's per-stage tables over its seeds: each stage's value, reference and share as mean ± std."""
    tables = [t for t in tables if t and t.get("rows")]
    if not tables:
        return None
    rows = []
    for pos, first in enumerate(tables[0]["rows"]):
        seeds = [t["rows"][pos] for t in tables if len(t["rows"]) > pos]
        problems = sorted({r.get("error") or r.get("not_measured") for r in seeds if "value" not in r})
        rows.append({"stage": first["stage"], "use": first["use"], "kind": first["kind"],
                     "figure": next((r["figure"] for r in seeds if "figure" in r), None),
                     "reference": next((r["reference"] for r in seeds if "reference" in r), None),
                     **{key: _spread([r.get(key) for r in seeds]) for key in ("value", "reference_value", "share")},
                     "problems": problems})
    links = [t["weak_link"]["stage"] for t in tables if t.get("weak_link")]
    return {"seeds": len(tables), "rows": rows, "weak_link_counts": {str(s): links.count(s) for s in sorted(set(links))}}


def format_stage_summary(summary: dict[str, Any], arm: str) -> str:
    """Markdown for :func:`summarize_stage_tables`: the per-stage table of one compare arm."""
    def pm(stat: dict[str, Any]) -> str:
        return "–" if stat["mean"] is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"

    lines = [f"### Stages of {arm} on held-out real cases (mean ± std over {summary['seeds']} seeds)", "",
             "| stage | kind | figure | stage's value | reference | reference value | share of reference | weak link in |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        weak = summary["weak_link_counts"].get(str(row["stage"]), 0)
        figure = row["figure"] or "; ".join(row["problems"]) or "–"
        lines.append(f"| {row['stage']} {row['use']} | {row['kind']} | {figure} | {pm(row['value'])} | {row['reference'] or '–'} "
                     f"| {pm(row['reference_value'])} | {pm(row['share'])} | {weak} of {summary['seeds']} seeds |")
    return "\n".join([*lines, ""])

"""Guarded INT8 quantization of an exported model on a dataset, without grading its own homework: calibration on a
seeded random sample of the train split, the partial-quantization choice on a held-apart slice of train, and the
reported AP on val, which no choice saw. A model that misses its AP budget is flagged in its sidecar and on stderr,
whoever called. The mechanics live in ``edgedet.export.quantize``; this module ties them to data, evaluation and
the sidecar. Torch-free, like everything a device runs."""

from __future__ import annotations

import random
from pathlib import Path

from edgedet.data.annotations import find_split, load_coco
from edgedet.errors import UsageError
from edgedet.evaluate.images import evaluate_predictor
from edgedet.export.quantize import QUANTIZATION, QuantizeResult, calibration_tensors, quantize_guarded
from edgedet.io import atomic_write_bytes, atomic_write_json
from edgedet.progress import stderr
from edgedet.runtime.onnx_detector import OnnxDetector, check_onnx
from edgedet.runtime.sidecar import ModelCard, sidecar_path


def train_slices(train: tuple[Path, Path], calib_images: int, guard_images: int, seed: int
                 ) -> tuple[list[Path], list[int]]:
    """A seeded shuffle of the train split (``find_split``'s annotations and images): the calibration images first,
    then the guard's image ids (disjoint). A split too small for both is shared: the guard takes what calibration
    leaves, or half when it would take all."""
    if min(calib_images, guard_images) < 1:
        raise UsageError("--calib-images and --guard-images must be at least 1")
    annotations, folder = train
    coco = load_coco(annotations)
    ids = sorted(coco.getImgIds())
    if len(ids) < 2:
        raise UsageError(f"{annotations}: the train split has {len(ids)} image(s); quantization needs at least 2 "
                         "(calibration, and the accuracy guard on others)")
    random.Random(seed).shuffle(ids)
    guard = min(guard_images, len(ids) - calib_images) if len(ids) > calib_images else len(ids) // 2
    calibrated = min(calib_images, len(ids) - guard)
    return [folder / coco.imgs[i]["file_name"] for i in ids[:calibrated]], ids[calibrated:calibrated + guard]


def quantize_model(model: Path, data: Path, out: Path, *, calib_images: int = 200, guard_images: int = 200,
                   method: str = "minmax", max_ap_drop: float = 1.0, eval_images: int | None = None,
                   threads: int = 2, flavour: str = "cpu", seed: int = 0) -> QuantizeResult:
    """FP32 ``model`` -> INT8 ``out`` (+ sidecar) in ``flavour`` (``cpu`` or ``tensorrt``): calibrated on
    ``calib_images`` random train images, the kept-in-FP32 nodes chosen on ``guard_images`` other train images,
    FP32 and INT8 then scored on val (the first ``eval_images``). Nothing is written unless quantization completes."""
    check_onnx(model)
    card = OnnxDetector(model).card  # input size vs sidecar, output layout: fail before the slow part
    train = find_split(data, "train")
    calibration_files, guard_ids = train_slices(train, calib_images, guard_images, seed)
    calibration = calibration_tensors(calibration_files, card.imgsz, calib_images)

    def score(candidate: bytes, split: tuple[Path, Path], **which: object) -> float:
        detector = OnnxDetector(candidate, card=card, threads=threads)
        return evaluate_predictor(detector, *split, card.class_names, **which)[0].metrics["AP"]

    stderr.print(f"calibrating on {len(calibration)} random train images ({method}), choosing on {len(guard_ids)} "
                 "other train images, reporting on val")
    result = quantize_guarded(model.read_bytes(), calibration,
                              lambda m: score(m, train, image_ids=guard_ids),
                              max_ap_drop=max_ap_drop, method=method, flavour=flavour)
    val = find_split(data, "val")
    result.val_fp32_ap = score(model.read_bytes(), val, max_images=eval_images)
    result.val_int8_ap = score(result.model, val, max_images=eval_images)
    if not result.within_budget:
        stderr.print(f"warning: {out.name} misses its AP budget: INT8 loses {result.ap_drop:.2f} AP on the guard "
                     f"images (> {max_ap_drop:g}) even with {len(result.kept_fp32)} nodes in FP32; its sidecar says "
                     "so. Try --method entropy or more --calib-images")
    atomic_write_bytes(out, result.model)
    atomic_write_json(sidecar_path(out), _int8_card(card, model, data, result, flavour, method, len(calibration),
                                                    len(guard_ids), seed))
    return result


def _int8_card(card: ModelCard, model: Path, data: Path, result: QuantizeResult, flavour: str, method: str,
               calibrated: int, guarded: int, seed: int) -> dict:
    quantization = QUANTIZATION[flavour] | {"within_budget": result.within_budget, "max_ap_drop": result.max_ap_drop}
    provenance = card.provenance | {
        "quantized_from": str(model),
        "calibration": {"images": calibrated, "split": "train", "seed": seed, "method": method, "data": str(data)},
        "guard": {"images": guarded, "split": "train, apart from calibration", "fp32_AP": result.fp32_ap,
                  "int8_AP": result.int8_ap, "kept_fp32": result.kept_fp32, "trials": result.trials},
        "val": {"fp32_AP": result.val_fp32_ap, "int8_AP": result.val_int8_ap}}
    return card.to_json() | {"precision": "int8", "quantization": quantization, "provenance": provenance}

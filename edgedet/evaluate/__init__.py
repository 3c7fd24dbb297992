"""Evaluation: COCO box metrics (``coco_eval``). Torch-free, so ONNX Runtime evaluation runs on devices without torch.

Import the submodule you need (``from edgedet.evaluate.coco_eval import evaluate_coco``); this package imports
nothing itself, so a sibling module that does not need pycocotools does not pay for it.
"""

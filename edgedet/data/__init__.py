"""COCO-format data: the dataset, box-aware transforms, a synthetic set for tests and demos, COCO subsets.

Modules other than ``annotations`` import torch, so import them where needed:
``from edgedet.data.coco import CocoDetection``.
"""

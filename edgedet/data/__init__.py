"""Datasets: COCO, YOLO and Pascal VOC layouts read as COCO (``formats``), unions of several, box-aware transforms,
a synthetic set for tests and demos, COCO subsets.

Modules other than ``annotations`` and ``formats`` import torch, so import them where needed:
``from edgedet.data.coco import CocoDetection``.
"""

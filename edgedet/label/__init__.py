"""Teachers label data for a student: weighted box fusion of several detectors (``fusion``) and ``edgedet label``
(``labeler``: an image folder, a video or a dataset -> a COCO-format dataset with scored teacher boxes).

Torch-free: import the modules, ``from edgedet.label.labeler import label_source``.
"""

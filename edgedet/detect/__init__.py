"""The detector: an ArchSpec backbone, a PAN-lite neck and a shared anchor-free head, with its loss."""

HEADS = ("edgedet", "ssdlite")  # edgedet's anchor-free head, or torchvision's SSDlite (a baseline)
# How each positive's box loss is weighted: "iou" by its soft target (the IoU of its own predicted box, so a box
# that misses its object gets no box gradient), "score" by its predicted class score (GFL), "uniform" equally.
BOX_WEIGHTINGS = ("iou", "score", "uniform")

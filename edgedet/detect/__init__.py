"""The detector: an ArchSpec backbone, a PAN-lite neck and a shared anchor-free head, with its loss."""

HEADS = ("edgedet", "ssdlite")  # edgedet's anchor-free head, or torchvision's SSDlite (a baseline)
BOX_WEIGHTINGS = ("iou", "score", "uniform")  # a positive's box-loss weight: its own box's IoU, its score (GFL), 1

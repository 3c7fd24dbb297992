"""The detector: an ArchSpec backbone, a PAN-lite neck and a shared anchor-free head, with its loss."""

"""edgedet: search, train, quantize and run a fast object detector for a chosen edge device."""

__version__ = "0.1.0"

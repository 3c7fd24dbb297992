"""Detection-aware, hardware-aware backbone search (FBNet DNAS): supernet, latency loss, derivation, the loop.

torch-heavy: import the submodules (``edgedet.search.loop`` etc.) where they are needed.
"""

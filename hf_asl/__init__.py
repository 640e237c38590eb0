"""hf-asl: practical image copy detection (ICD) with Asymmetrical-Similarity Learning."""

from .version import __version__

__all__ = ["__version__"]

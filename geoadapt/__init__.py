"""geoadapt: adapt pretrained geometric models to new tasks without losing their symmetry."""

from geoadapt.spec import Spec

__version__ = "0.1.0"
__all__ = ["Spec", "__version__"]

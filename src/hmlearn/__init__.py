"""hmlearn: hierarchical multi-label learning that finds the rare, deep nodes of a hierarchy."""

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

__version__ = "0.1.0"
__all__ = ["HMLError", "Hierarchy", "__version__"]

"""igpg-zoo adapter for timm: ``timm/<model>?num_classes=N&in_chans=C&img_size=S``.

Registered through the entry point ``igpg_zoo.adapters: timm``. Importing this package does not
import timm or torch; the adapter imports them when it first needs them.
"""

from igpg_zoo_timm.adapter import TimmAdapter
from igpg_zoo_timm.arch import TimmArch, parse_arch

__all__ = ["TimmAdapter", "TimmArch", "parse_arch"]
__version__ = "0.1.0"

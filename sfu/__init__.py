"""sfu: Taphuan's selective forwarding unit: RTP packets in, rewritten RTP packets out, nothing decoded.

Public entry points: ``Sfu`` (owns rooms), ``Room`` (the signalling layer's API), ``Capabilities`` (what a
participant may do), ``SfuConfig``, ``SfuError``, the event dataclasses in ``sfu.events`` and the frozen views
of a room in ``sfu.snapshot``.
"""

from sfu.config import SfuConfig
from sfu.errors import SfuError

__all__ = ["SfuConfig", "SfuError"]

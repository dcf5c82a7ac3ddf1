"""sfu: Taphuan's selective forwarding unit: RTP packets in, rewritten RTP packets out, nothing decoded.

Public entry points: ``Sfu`` (owns rooms), ``Room`` (the signalling layer's API), ``SfuConfig``, ``SfuError``
and the event dataclasses in ``sfu.events``.
"""

from sfu.config import SfuConfig
from sfu.errors import SfuError

__all__ = ["SfuConfig", "SfuError"]

"""layers: which simulcast layer of a track fills a down target's slot.

The slot plan (``sfu.plan``) says which track fills a slot; ``pick_layer`` says which of its layers
(``Producer.layers``, lowest spatial layer first) that slot forwards when the downlink allocator does not
choose (``sfu.downlinks.Downlinks.apply``: the recorder's Sinks, audio, a cascade link, or allocation off). The
rule: grid tiles take the lowest layer arriving, every other slot the highest arriving, and an in-process Sink (the
recorder) always the highest arriving, outside any budget. "Arriving" is what the publisher actually sends
(``Producer.arriving``): Chromium may send fewer layers than it negotiated. Before any layer arrives, the rule
applies to all the negotiated layers.
"""

from __future__ import annotations

from sfu.producer import Producer
from sfu.sink import DownTarget, Sink


def pick_layer(track: Producer, slot: str, target: DownTarget) -> Producer:
    """pick_layer: the layer of `track` that `target` (a Consumer or a Sink) forwards in `slot`."""
    layers = track.layers
    if len(layers) == 1:
        return layers[0]
    arriving = track.arriving_layers or layers
    if isinstance(target, Sink) or not slot.startswith("grid-"):
        return arriving[-1]
    return arriving[0]

"""relay: a cascade link's streams and the ghosts they carry (docs/sfu.md, "Cascade"); the room's mailbox task only.

A relay participant publishes its link's streams labelled by the other end's slot names; `bind` records which
ghost's source a stream carries now (``Participant.bound``) and makes the stream that ghost's Producer, so the
slots showing the ghost forward it like any publisher's.
"""

from __future__ import annotations

from collections.abc import Mapping

from sfu.participant import Participant


def apply_binding(participants: Mapping[str, Participant], relay: Participant, label: str) -> None:
    """apply_binding: relay's stream `label` becomes its ghost's source, when both exist and kinds agree."""
    owner_id, source = relay.bound[label]
    owner, track = participants.get(owner_id), relay.producers.get(label)
    if owner is None or owner.via != relay.id or track is None or \
            track.kind != ("audio" if source == "mic" else "video"):
        return
    for layer in track.layers:
        layer.participant_id, layer.source, layer.muted = owner.id, source, source in owner.muted
    owner.producers[source] = track


def unbind(participants: Mapping[str, Participant], relay: Participant, label: str) -> None:
    """unbind: the ghost that relay's stream `label` was bound to no longer has it, unless another of the
    relay's streams carries the same source too (the presenter holding the floor comes in two slots)."""
    was = relay.bound.pop(label, None)
    track = relay.producers.get(label)
    owner = participants.get(was[0]) if was is not None else None
    if was is not None and owner is not None and track is not None and owner.producers.get(was[1]) is track:
        del owner.producers[was[1]]
        for other, bound in relay.bound.items():
            if bound == was:
                apply_binding(participants, relay, other)
                break


def release(participants: Mapping[str, Participant], relay: Participant) -> None:
    """release: the relay's streams leave its ghosts (its Peer closes); they stay bound for its next publish."""
    tracks = set(relay.producers.values())
    for ghost in participants.values():
        if ghost.via == relay.id:
            ghost.producers = {src: t for src, t in ghost.producers.items() if t not in tracks}

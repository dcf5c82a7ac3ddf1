"""errors: the one exception type the SFU raises to the signalling layer."""

from __future__ import annotations


class SfuError(Exception):
    """SfuError is a refusal with a machine-readable code and a human-readable message.

    Codes: ``sdp-too-large``, ``sdp-invalid``, ``codec``, ``full``, ``forbidden``, ``not-found``, ``exists``,
    ``state`` (wrong moment, e.g. an answer without an offer), ``closed``, ``token``.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code

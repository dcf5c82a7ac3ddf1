"""hooks: the only package of Taphuan that touches aiortc / aioice (and pylibsrtp) internals.

aiortc, aioice and pylibsrtp are pinned exactly; ``guard`` lists every private name the hooks use and
``tests/sfu/hooks/test_guard.py`` fails when one disappears. One module per hook (each imports only the ones
listed before it):

* ``guard`` - the pinned versions, the private names, the libsrtp check of the C extension (``COMPILED_PATH``).
* ``ice`` - aioice's Connection: host candidates on configured addresses and ports, socket receive buffers,
  ICE consent on the room's Ticker (``Consent``).
* ``reader`` - ``SocketTransport``: an ICE socket taken from the event loop's transport and read with
  ``recvmmsg`` straight into the C demultiplexer (``sfu/_reader.c``; ``PythonReader`` the twin).
* ``sender`` - ``ForwardingSender``: an idle aiortc sender whose RTCP goes to the Consumer (or its C slot).
* ``demux`` - ``MediaDemux`` (the C demultiplexers of a transport's sockets) and the router's RTCP routing.
* ``feedback`` - ``ReceiverFeedback``: a transport's receiver reports and REMB, one Ticker job, sent in C.
* ``receiver`` - ``ForwardingReceiver``: aiortc's receive path replaced by reports, NACK, REMB and PLI.
* ``simulcast`` - a browser's simulcast: ``a=rid``/``a=simulcast`` in the answer, layer SSRCs routed by rid.
* ``sync_receive`` - media and RTCP from the socket to receivers and senders without aioice's queue.
* ``wire`` - ``PacketWire``: protect in place and ``sendto``, and the transport's sender reports.
* ``connection`` - ``SfuPeerConnection``: the RTCPeerConnection that installs all of the above.
"""

"""hooks: the only package of Taphuan that touches aiortc / aioice (and pylibsrtp) internals."""

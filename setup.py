"""setup: the optional C extension sfu._fanout (the SFU's receive path and fan-out); the rest is in pyproject.toml.

The build is optional: without a C compiler or Python headers the install succeeds and the SFU uses its
pure-Python forwarding path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "sfu._fanout", ["sfu/_fanout.c", "sfu/_route.c", "sfu/_ingress.c", "sfu/_demux.c", "sfu/_rtcp.c", "sfu/_report.c",
                    "sfu/_remb.c", "sfu/_pacer.c", "sfu/_feedback.c",
                    "sfu/_reader.c", "sfu/_cells.c"],
    depends=["sfu/_fanout.h", "sfu/_vp8.h"], optional=True, extra_compile_args=["-O2"],
)])

"""The registered data sources (``data.kind``); one module each, registered on import.

To add a source: write ``data/sources/<name>.py`` with a :class:`DataSource` subclass
decorated with :func:`register_source`, and import it below (its registry line).
"""

from manytask.data.sources.base import (
    DataSource,
    HeldOutFractions,
    available_sources,
    parse_source,
    register_source,
    source_class,
)

# registry: one line per built-in source
from manytask.data.sources import arrays as _arrays  # noqa: E402,F401
from manytask.data.sources import digits as _digits  # noqa: E402,F401
from manytask.data.sources import galleries as _galleries  # noqa: E402,F401
from manytask.data.sources import images as _images  # noqa: E402,F401
from manytask.data.sources import mnist as _mnist  # noqa: E402,F401
from manytask.data.sources import mnist_galleries as _mnist_galleries  # noqa: E402,F401
from manytask.data.sources import multimnist as _multimnist  # noqa: E402,F401
from manytask.data.sources import table as _table  # noqa: E402,F401
from manytask.data.sources import yeast as _yeast  # noqa: E402,F401

__all__ = ["DataSource", "HeldOutFractions", "available_sources", "parse_source", "register_source", "source_class"]

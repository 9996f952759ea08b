"""The registered data sources (``data.kind``); one module each, registered on import.

To add a source: write ``data/sources/<name>.py`` with a :class:`DataSource` subclass
decorated with :func:`register_source`, and import it below (its registry line).
"""

# registry: one line per built-in source
from manytask.data.sources import arrays as _arrays  # noqa: F401
from manytask.data.sources import digits as _digits  # noqa: F401
from manytask.data.sources import galleries as _galleries  # noqa: F401
from manytask.data.sources import images as _images  # noqa: F401
from manytask.data.sources import mnist as _mnist  # noqa: F401
from manytask.data.sources import mnist_galleries as _mnist_galleries  # noqa: F401
from manytask.data.sources import multimnist as _multimnist  # noqa: F401
from manytask.data.sources import table as _table  # noqa: F401
from manytask.data.sources import yeast as _yeast  # noqa: F401
from manytask.data.sources.base import (
    DataSource,
    HeldOutFractions,
    available_sources,
    parse_source,
    register_source,
    source_class,
)

__all__ = ["DataSource", "HeldOutFractions", "available_sources", "parse_source", "register_source", "source_class"]

# UvicornWorker with uvicorn's pure-Python HTTP parser (h11) instead of httptools: the seed's stack as it runs
# when httptools is not installed (Debian's python3-uvicorn does not depend on it; pip's `uvicorn` without the
# [standard] extra installs neither httptools nor uvloop). `-k seed_workers.UvloopH11Worker` with --chdir here.
from uvicorn.workers import UvicornWorker


class UvloopH11Worker(UvicornWorker):
    """uvloop's event loop, h11's parser."""

    CONFIG_KWARGS = {"loop": "uvloop", "http": "h11"}


class AsyncioH11Worker(UvicornWorker):
    """asyncio's own event loop, h11's parser: `pip install gunicorn uvicorn fastapi`, nothing more."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "h11"}

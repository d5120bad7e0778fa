"""Files written beside their final name and moved into place, so a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


@contextmanager
def written_in_place(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` for the block to write; moved onto `target` (readable by all, as a
    shared cache needs) when the block ends without error, removed in every case."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        temp.chmod(0o644)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)

"""The five DVC stages: `python -m stages.<name>` from the project root (what dvc.yaml runs).

Each stage's `main()` reads params, calls the library (`src/reprotrain`) and writes its
outputs; the library knows nothing of DVC.
"""

import os
import sys
from pathlib import Path

# A stage runs the library of its own checkout, not whichever one is installed: `dvc exp
# run --temp` and queued experiments run the pipeline in a copy of the project.
_LIBRARY = str(Path(__file__).resolve().parent.parent / "src")
if _LIBRARY not in sys.path:
    sys.path.insert(0, _LIBRARY)

# Memory settings that numpy and Arrow read once, when they load: set here, before any
# stage module imports pandas. (Defaults only: the environment still wins.)
# - Arrow's C++ default pool (mimalloc in this pyarrow) serves the Parquet reader's own
#   buffers, which `pyarrow.set_memory_pool` does not reach, and keeps ~100 MB of them
#   resident for good after a large file is read; jemalloc hands freed pages back.
#   Linux only: the wheels elsewhere are built without jemalloc.
# - numpy asks for transparent huge pages on large arrays; in a heap that also holds small
#   objects, the kernel then keeps whole 2 MB pages resident for a few live bytes, and the
#   peak memory of a stage varies from run to run by tens of MB.
if sys.platform == "linux":
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

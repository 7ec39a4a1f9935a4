import os

# Idle OpenMP threads sleep instead of spinning (set before torch loads): on a shared 2-core machine
# spinning threads make small ops ~100x slower. Cells run as subprocesses get the same (runner.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402

from .driver import main  # noqa: E402

sys.exit(main())

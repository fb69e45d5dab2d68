"""python -m harness.cli: the same commands as `harness`."""
import sys

from harness.cli import main

sys.exit(main())

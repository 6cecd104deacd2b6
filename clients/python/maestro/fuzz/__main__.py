"""`python -m maestro.fuzz`: the fuzzer's command line."""

import sys

from maestro.fuzz.cli import main

sys.exit(main())

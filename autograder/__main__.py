"""``python -m autograder SUBMISSIONS [options]``: the same as ``course grade``."""
import sys

from autograder.command import main

sys.exit(main())

"""``python -m bptt.grading SUBMISSIONS GRADES.csv``: see bptt.grading.autograde."""

import sys

from bptt.grading.autograde import main

sys.exit(main())

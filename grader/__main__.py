"""``python -m grader SUBMISSIONS GRADES.csv``: see grader.autograde."""

import sys

from grader.autograde import main

sys.exit(main())

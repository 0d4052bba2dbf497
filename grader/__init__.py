"""The instructors' grading tool for the course's nbgrader assignments (not course content).

Students never need this package; the chapters never import it. Instructors run it through the
Makefile or directly:

    make exercises                                    # solutions/ -> exercises/ (release notebooks)
    make grade SUBMISSIONS=<dir> GRADES=<file.csv>     # autograde a class, write feedback and a CSV
    python -m grader --help

``autograde`` holds the driver (layout checks, resumable batches, parallel workers, the CSV),
``execute`` the nbgrader preprocessor that runs the tests in the grader and the student's code in
a sandbox, ``sandbox`` the bubblewrap sandbox, ``runner`` what runs inside it, ``wire`` the
pickle-free messages between the two, ``feedback`` the preprocessor that keeps hidden tests out of
the feedback, ``bench`` the throughput measurement used by ``make bench``.
"""

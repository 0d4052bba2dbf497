"""The instructors' grader for the course's nbgrader assignments (not course content: students
and the chapters never import it). ``make grade``/``python -m grader`` autograde a class,
``make exercises`` writes the release notebooks, ``make similarity`` compares answers; the stock
``nbgrader`` commands use :class:`grader.execute.SandboxedExecute` through nbgrader_config.py.
GRADING.md describes what each module does and guarantees.
"""

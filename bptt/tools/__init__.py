"""Project tooling, not course content: paired notebooks, the site check, benchmarks.

The chapters never import from here; instructors and authors run these
through the Makefile.
"""

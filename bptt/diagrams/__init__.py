"""Conceptual diagrams of the book, drawn by code so that they stay true.

``draw`` holds the few primitives every diagram uses (a canvas, nodes, arrows, one palette);
each other module draws one idea and returns its matplotlib figure.
"""

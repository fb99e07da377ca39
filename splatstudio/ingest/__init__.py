"""Bringing existing work in: datasets (COLMAP, reference-trainer output, nerfstudio) opened as projects.

A floor above :mod:`splatstudio.io` (it reads their formats) and below the pipeline and the window: the
model under it stays free of file formats. Pure: no Qt.
"""

"""``python -m realtime.batch``: many recorded videos at once on Ray, each through what ``stream.py`` runs.

One idea a module: :mod:`~realtime.batch.command` (the command line and the order of the steps),
:mod:`~realtime.batch.planning` (which videos, and which still need doing), :mod:`~realtime.batch.runner`
(running them on Ray actors), :mod:`~realtime.batch.worker` (one video in, a finished folder out) and
:mod:`~realtime.batch.report` (the table, the HTML page, the progress on the terminal).
"""

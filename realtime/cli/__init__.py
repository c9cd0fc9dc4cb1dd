"""What the commands share: argument types and the one-line error wrapper (:mod:`~realtime.cli.arguments`),
stopping rules for a run (:mod:`~realtime.cli.stopping`) and the HTML page of a run
(:mod:`~realtime.cli.report_html`). The commands themselves are ``stream.py`` and ``python -m realtime.batch``.
"""

"""The streaming stages, in the order a frame meets them; each is a small class with options (a dataclass)
that returns a frozen dataclass:

    capture  ->  faces  ->  spotter  ->  classify  ->  render / outputs
    frames       tracked     apex of a    the named     overlay, video,
                 faces       micro-exp.   emotion       JSONL, CSV

:mod:`realtime.pipeline` chains them for one frame; :mod:`realtime.process` runs the loop over a source.
"""

"""The torch-free core both worlds share: what the stream runs and training imports, so a face is found,
aligned and turned into the classifier's input the same way in both.

- :mod:`~realtime.core.errors`: the errors a user can act on (one clear line, exit code 2).
- :mod:`~realtime.core.files`: atomic writes (text, bytes, JSON), file hashes, the image suffixes we read.
- :mod:`~realtime.core.landmarks`: dlib's face detector and 68-landmark model.
- :mod:`~realtime.core.align`: the paper's alignment (eyes level about the inner eye corners, eq. 1-2) and crop.
- :mod:`~realtime.core.motion`: the classifier's inputs (apex, onset-apex difference, flow; head motion removed).
- :mod:`~realtime.core.pose`: head pose from the landmarks.
- :mod:`~realtime.core.apex`: the offline apex chooser for a recorded clip (training and data-set readers).
- :mod:`~realtime.core.model_contract`: what an exported model says about itself (written by the export,
  read by the classifier).
- :mod:`~realtime.core.ray_jobs`: Ray start-up and the bounded job loop of the two parallel commands.
"""

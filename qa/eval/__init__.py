"""Beside the pipeline, evaluation: ``evaluate`` scores the whole pipeline against a gold
question set (and SQuAD, via ``squad``), ``report`` writes the comparison, ``reference``
is LlamaIndex's own engine as a peer to compare against.
"""

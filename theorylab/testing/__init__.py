"""Conformance kit: hypothesis strategies and check functions users can run on their own
operators (compressors, mixing rules, aggregators). Each check states its false-failure
probability. Submodules: ``graphs`` (graphs and mixing matrices), ``compressors``.
"""

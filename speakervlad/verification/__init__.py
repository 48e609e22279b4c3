"""Enroll, verify, identify: everything a product needs around the embeddings.

=================  ==========================================================================
``verifier``       :class:`Verifier`: enroll, verify, identify, compare, with thresholds from
                   calibration (score -> LLR) and the VAD on by default
``quality``        what a recording gave its embedding (duration, speech seconds, ghost mass)
                   and the speech gate that refuses recordings with too little speech
``store``          :class:`EnrollmentStore`: SQLite, one row per enrolled recording, transactional
``store_schema``   the store's tables and the migrations of older stores
``identifiers``    speaker-id and recording-label rules (store, API, CLI, HTTP)
=================  ==========================================================================

Importing this package loads nothing; ``verifier`` loads the model runtime (torch) when used.
"""

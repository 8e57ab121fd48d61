"""Answering from retrieved passages: model tiers and generation (models, generate), prompts and context
(prompt, context), and the policy that grounds and scores a reply (phrase, cite, reader).

May use `rag.documents`, `rag.index` and the foundation modules; never the pipeline, evaluation, bench or
front ends.
"""

"""Text the pipeline does not write (documents, a server's replies) cannot pass for text it does:
citation markers, passage lines, chat-template control tokens, and the API key in error messages."""

from __future__ import annotations

import pytest

from rag.errors import GenerationFailed
from rag.generate import RemoteGenerator

KEY = "sk-test-d41d8cd98f00b204e980"


def test_a_key_echoed_across_the_snippet_cut_is_still_blanked():
    gen = RemoteGenerator("http://127.0.0.1:9", api_key=KEY)
    # Not JSON, and long: the error quotes its first 200 characters, which end inside the key.
    with pytest.raises(GenerationFailed) as caught:
        gen.parse_chunk("x" * 190 + f" {KEY} " + "y" * 50)
    message = str(caught.value)
    assert "***" in message and KEY[:6] not in message and message.endswith("…")

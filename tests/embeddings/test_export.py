"""`kexue export --format sentence-transformers`: the folder loads in sentence-transformers and encodes alike."""

from __future__ import annotations

import numpy as np
import pytest

from kexue.cli import main
from kexue.embeddings import SentenceEncoder
from kexue.embeddings.export import export_sentence_transformers
from kexue.errors import ConfigError

SENTENCES = ["A plane is taking off.", "An air plane is taking off.", "A man is playing a large flute.",
             "Three men are playing chess on a park bench in the sunshine today."]


@pytest.mark.parametrize("pooling", ["last-avg", "cls"])
def test_sentence_transformers_encodes_the_same(tmp_path, tiny_bert_dir, pooling):
    from sentence_transformers import SentenceTransformer

    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling=pooling)
    run = tmp_path / "run"
    encoder.save_pretrained(run)
    out = tmp_path / "st"
    main(["export", "--format", "sentence-transformers", str(run), str(out)])
    st = SentenceTransformer(str(out), device="cpu")
    ours = encoder.encode(SENTENCES)
    theirs = st.encode(SENTENCES, convert_to_numpy=True, batch_size=2)
    assert np.abs(ours - theirs).max() < 1e-5


def test_unsupported_pooling_is_refused(tmp_path, tiny_bert_dir):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling="first-last-avg")
    with pytest.raises(ConfigError, match="first-last-avg"):
        export_sentence_transformers(encoder, tmp_path / "st")

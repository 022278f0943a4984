"""Passages keep exact spans; headings and datelines stay as sentences of their own."""

import itertools

from qa.ingest.chunking import group_sentences, parse_sentence_spans, sentence_spans, split_document
from qa.ingest.reading import make_document
from tests.conftest import CORPUS


def test_sentence_spans_are_exact_and_line_aware():
    text = "Heading Line\n\nFirst sentence here.  Second one, Mr. Smith said.\nJune 2, 2014\n"
    spans = sentence_spans(text)
    pieces = [text[s:e] for s, e in spans]
    assert pieces == [
        "Heading Line",
        "First sentence here.",
        "Second one, Mr. Smith said.",
        "June 2, 2014",
    ]


def test_grouping_respects_budget_and_overlap():
    sents = [(i * 10, i * 10 + 9) for i in range(6)]
    groups = group_sentences(sents, [40] * 6, max_tokens=100, overlap=1)
    assert [len(g.sentences) for g in groups] == [2, 2, 2, 2, 2]
    assert all(a.sentences[-1] == b.sentences[0] for a, b in itertools.pairwise(groups))
    # a single sentence longer than the budget is a passage of its own
    assert len(group_sentences([(0, 5)], [500], 100, 1)) == 1


def test_split_document_spans_and_ids(embedder):
    text = (CORPUS / "001_133982da83dacee9.txt").read_text(encoding="utf-8")
    doc = make_document("a1", text, title="t", path="p", root="r")
    nodes = split_document(doc, embedder.count_tokens, 128, 1)
    assert len(nodes) > 3
    for node in nodes:
        assert node.text == text[node.start_char_idx : node.end_char_idx]
        for s, e in parse_sentence_spans(node.metadata["sentences"]):
            assert 0 <= s < e <= len(node.text)
        assert max(embedder.count_tokens([node.text])) <= 256
    assert "Image Credit: Russian Presidential Press and Information Office" in nodes[0].text
    again = split_document(doc, embedder.count_tokens, 128, 1)
    assert [n.node_id for n in nodes] == [n.node_id for n in again]

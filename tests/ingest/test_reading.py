"""Every supported format, and files that can't be articles are skipped with a reason."""

import json
from pathlib import Path

from qa.ingest.reading import read_corpus

# A minimal one-page PDF with the text "Gas deal signed in Shanghai" (hand-written syntax).
_PDF_STREAM = b"BT /F1 12 Tf 72 720 Td (Gas deal signed in Shanghai) Tj ET"


def _pdf_bytes() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(_PDF_STREAM) + _PDF_STREAM + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def _write_corpus(root: Path) -> None:
    (root / "plain.txt").write_text("A plain title\nBody text about gas.\n", encoding="utf-8")
    (root / "front.md").write_text(
        "---\ntitle: Front matter title\nsource: Example Times\npublished: 2014-05-21\n---\n"
        "# Heading\nMarkdown body.\n",
        encoding="utf-8",
    )
    (root / "page.html").write_text(
        "<html><head><title>HTML title</title><style>p{color:red}</style>"
        "<script>alert('x')</script></head><body><h1>Big</h1><p>Paragraph &amp; text.</p>"
        "<script>evil()</script></body></html>",
        encoding="utf-8",
    )
    lines = [
        {"title": "JSON one", "text": "First JSON article.", "source": "Wire", "url": "u1"},
        {"title": "JSON two", "text": "Second JSON article.", "published": 2014},
        {"title": "no text"},
        {"text": "no title"},
        "not an object",
    ]
    jsonl = "\n".join(json.dumps(x) for x in lines) + "\n{broken json\n"
    (root / "feed.jsonl").write_text(jsonl, encoding="utf-8")
    (root / "doc.pdf").write_bytes(_pdf_bytes())
    (root / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "empty.md").write_text("   \n", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.txt").write_text("hidden", encoding="utf-8")


def test_formats_and_skips(tmp_path):
    _write_corpus(tmp_path)
    docs, skipped = read_corpus([tmp_path], tmp_path)
    by_id = {d.doc_id: d for d in docs}
    assert set(by_id) == {
        "plain.txt",
        "front.md",
        "page.html",
        "feed.jsonl--JSON-one",
        "feed.jsonl--JSON-two",
        "doc.pdf",
    }
    assert by_id["plain.txt"].metadata["title"] == "A plain title"
    front = by_id["front.md"]
    assert front.metadata["title"] == "Front matter title"
    assert front.metadata["source"] == "Example Times"
    assert front.metadata["published"] == "2014-05-21"
    assert front.text.startswith("# Heading")
    html = by_id["page.html"]
    assert html.metadata["title"] == "HTML title"
    assert "Paragraph & text." in html.text
    assert "alert" not in html.text and "evil" not in html.text and "color" not in html.text
    assert by_id["feed.jsonl--JSON-two"].metadata["published"] == "2014"
    assert "Gas deal signed in Shanghai" in by_id["doc.pdf"].text

    reasons = {s.path: s.reason for s in skipped}
    assert reasons["binary.txt"] == "binary content"
    assert reasons["latin1.txt"] == "not UTF-8 text"
    assert reasons["empty.md"] == "empty"
    assert reasons["image.png"].startswith("unsupported file type")
    assert reasons["feed.jsonl:3"] == "missing or empty 'text'"
    assert reasons["feed.jsonl:4"] == "missing or empty 'title'"
    assert reasons["feed.jsonl:5"] == "not a JSON object"
    assert reasons["feed.jsonl:6"] == "not valid JSON"
    assert not any("hidden" in s.path for s in skipped)


def test_shipped_corpus_metadata_and_verbatim_text():
    root = Path(__file__).resolve().parents[2] / "corpus" / "articles"
    docs, skipped = read_corpus([root], root)
    assert skipped == []
    by_id = {d.doc_id: d for d in docs}
    diplomat = by_id["001_133982da83dacee9.txt"]
    assert diplomat.metadata["source"] == "The Diplomat"
    assert diplomat.metadata["published"] == "2014-06-02"
    raw = (root / "001_133982da83dacee9.txt").read_text(encoding="utf-8")
    assert diplomat.text == raw

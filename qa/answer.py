"""The extractive answerer, the offline default: the answer is made of the retrieved
passages' own sentences, each followed by the ``[n]`` of the passage it comes from, or a
plain refusal when the retrieved text doesn't support an answer.

Each question term is matched against the sentences word for word or, failing that, in
meaning: its contextual token vector (from the question's own embedding pass) against the
corpus vectors of the sentence's terms (``qa.vocab``, built at index time), so "supply"
finds "provide" and "drill" finds "exercise". Names, numbers and dates are matched word for
word only ("Shanghai" is not found in "China", nor "2014" in "2013"). A sentence's
*coverage* is the IDF-weighted share of the question it holds that way.

Sentence score = semantic similarity (sentence vector from index time) + coverage +
whether the sentence fills the answer *slot*: holds a value of the kind asked for that the
question doesn't already state (a year for "in what year", a number for "how many", a name
for "who", a place for "where", a reported reaction by whom was asked for "how did Tokyo
react").

Refusal is a decision from several pieces of evidence, not one similarity cut-off
(weights in ``RefusalModel``; the answer is refused when the confidence is below zero):
- how close the best sentence is in meaning (``dense``);
- how much of the question the best sentence and the best passage hold (``coverage``,
  ``support``);
- whether the thing asked about ("how many *sailors*", "who is the *CEO*") is there at
  all (``focus_missing``);
- how much of the question the corpus has never seen, as names ("Germany", "World Cup")
  or other words (``unknown_names``, ``unknown``);
- whether the answer sentences leave the slot empty (``slot_empty``: "what was the value
  of the deal" answered by a sentence with no amount);
- how much of the question's own names, numbers and dates the answer sentences lack
  (``names_missing``: "in 2013" answered by a sentence about 2018).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from qa.chunking import parse_sentence_spans
from qa.embedding import DIM
from qa.followup import points_back
from qa.keyword import KeywordIndex
from qa.store import StoredPassage
from qa.text import name_terms, query_terms, terms, words
from qa.vocab import TermVectors

REFUSAL = "The articles in the corpus don't answer this."

_NUMBER_Q = re.compile(
    r"\bhow (much|many|long|far|big|large|often|old|close|high|wide|deep|heavy|fast)\b"
    r"|\b(what|which)( \w+)? (percentage|percent|share|portion|proportion|fraction|amount|"
    r"number|volume|value|size|sum|figure|edition|total|length|distance|price|cost)s?\b"
    r"|\b(what|which) (is|was|are|were|will be) the (\w+ )?(percentage|share|portion|"
    r"proportion|fraction|amount|number|volume|value|size|sum|figure|total|length|distance|"
    r"price|cost|count)s? (of|on|for|in|between)\b|\bworth\b|\bcost\b",
    re.I,
)
_DATE_Q = re.compile(
    r"\bwhen\b|\b(what|which|on what|on which) (year|date|month|day|time)s?\b|\bsince when\b"
    r"|\bhow long ago\b",
    re.I,
)
_WHO_Q = re.compile(r"^\W*(and )?(who|whom|whose)\b|\bthe (name|title) of\b", re.I)
_WHERE_Q = re.compile(
    r"^\W*(and )?where\b|\b(in|at|to|from) (which|what) (city|country|region|province|place|"
    r"town|location|venue|sea|body of water)\b",
    re.I,
)
# "How did Tokyo react to ...?", "What did Seoul say about ...?": answered by a sentence
# that reports a reaction or a statement, by them (named in the few words before the verb:
# "Russian President Vladimir Putin expressed"), not by one merely about the same thing
_REACTION_Q = re.compile(
    r"\bhow (?:did|does|do|has|have|will|would) (?P<a>(?:[\w’'-]+ ){1,6}?)(?:respond|react|"
    r"reply|answer|receive|view)\b|\bwhat (?:did|does|do|has|have) (?P<b>(?:[\w’'-]+ ){1,6}?)"
    r"(?:say|said|think|make) (?:of|about|on|to)\b|\bhow (?:was|were|is|are) "
    r"(?:[\w’'-]+ ){1,6}?(?:received|viewed|greeted|welcomed) by (?P<c>(?:[\w’'-]+ ?){1,4})",
    re.I,
)
_REACTION_VALUE = re.compile(
    r"\b(?:sa(?:id|ys?)|stat(?:ed|es)|announc(?:ed|es)|respond(?:ed|s)|react(?:ed|s)|repl(?:ied|ies)|"
    r"welcom(?:ed|es)|applaud(?:ed|s)|prais(?:ed|es)|hail(?:ed|s)|support(?:ed|s)|endors(?:ed|es)|"
    r"back(?:ed|s)|condemn(?:ed|s|ing)|criticiz(?:ed|es)|criticis(?:ed|es)|denounc(?:ed|es)|"
    r"protest(?:ed|s)|reject(?:ed|s)|oppos(?:ed|es)|warn(?:ed|s)|call(?:ed|s) (?:for|on)|"
    r"express(?:ed|es)|voic(?:ed|es)|dismiss(?:ed|es)|vow(?:ed|s)|pledg(?:ed|es)|"
    r"point(?:ed|s) out|add(?:ed|s)|not(?:ed|es)|argu(?:ed|es)|claim(?:ed|s)|stress(?:ed|es)|"
    r"emphasi[sz](?:ed|es)|told|wrote|insist(?:ed|s)|accus(?:ed|es)|complain(?:ed|s))\b",
    re.I,
)
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"

# What fills the slot asked for, one match per value: "May 20", "1992", "$400 billion",
# "nine", "4th", "Zachary Keck", "in Inner Mongolia".
_DATE_VALUE = re.compile(
    rf"\b(?:(?:{MONTHS})(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? (?:1[89]|20)\d\d)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:{MONTHS})(?: (?:1[89]|20)\d\d)?|(?:1[89]|20)\d\d"
    r"|(?:[Mm]on|[Tt]ues|[Ww]ednes|[Tt]hurs|[Ff]ri|[Ss]atur|[Ss]un)day"
    r"|yesterday|today|tomorrow|(?:last|next|this|that) (?:week|month|year))\b"
)
_NUMBER_VALUE = re.compile(
    r"(?<![\w-])\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
    r"twelve|twenty|thirty|forty|fifty|hundred|thousand|dozens?|half|twice|double|first|"
    r"second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)\b",
    re.I,
)
_NAME_VALUE = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'-]*(?:[ -][A-Z][\w’'-]*)*")
# "in Beijing", "in the northern waters of the East China Sea"
_PLACE_VALUE = re.compile(
    r"\b(?:in|at|from|near|to) (?:the )?(?:[a-z]+ (?:of )?(?:the )?){0,3}"
    r"([A-Z][\w’'-]*(?:[ -](?:of )?[A-Z][\w’'-]*)*)"
)
_DEMONYM = re.compile(r"(?:ese|ian|ean|ish|ern)$")
_REGIONS = {"central", "north", "south", "east", "west", "northeast", "northwest", "southeast"}
_REGIONS |= {"southwest", "upper", "lower", "inner", "outer"}
_CALENDAR = re.compile(rf"^(?:{MONTHS}|\w+day)$")


# "what year", "which edition", "what trade figure", "what was the value of": the noun names
# the kind of answer (checked by expected_type), not something the answer sentence must
# contain word for word.
_ANSWER_NOUN = re.compile(
    r"\b(?:what|which)\s+(?:\w+\s+)??(year|date|month|day|time|number|amount|percentage|"
    r"percent|share|portion|proportion|fraction|edition|figure|value|kinds?|types?|sorts?)s?\b"
    r"|\b(?:what|which) (?:is|was|are|were) the (number|amount|value|figure|size|total)s? of\b",
    re.I,
)


def answer_nouns(question: str) -> set[str]:
    return {
        t for m in _ANSWER_NOUN.finditer(question) for t in query_terms(m.group(1) or m.group(2))
    }


def expected_type(question: str) -> str | None:
    if _REACTION_Q.search(question):
        return "reaction"
    if _DATE_Q.search(question):
        return "date"
    if _NUMBER_Q.search(question):
        return "number"
    if _WHO_Q.search(question):
        return "name"
    if _WHERE_Q.search(question):
        return "place"
    return None


def _reactor(question: str) -> set[str]:
    """Name terms of who the reaction is asked of ("Tokyo" -> tokyo, japan, japanes)."""
    match = _REACTION_Q.search(question)
    who = next((g for g in match.groups() if g), "") if match else ""
    return _expand(name_terms(f"x {who}"))


def _names_any(names: set[str], text: str) -> bool:
    return any(t in names or any(_variant(t, n) for n in names) for t in terms(text))


def _expand(found: set[str]) -> set[str]:
    return found.union(*(METONYMS.get(t, set()) for t in found))


def slot_values(
    kind: str | None, text: str, question: str, topic: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The values of the kind asked for that ``text`` holds and ``question`` does not: a
    date for "when", a number for "how many", a name for "who", a place for "where". A
    value the question already states ("2014" in "Joint Sea-2014") answers nothing, nor
    does a name of the corpus's topic (``topic``: terms in most passages, "China")."""
    if kind is None:
        return []
    if kind == "reaction":
        # a reaction, and by whom the question asks about when it names them ("Tokyo",
        # "the Japanese government"): "Voice of Russia added" is not Japan's response
        reactor = _reactor(question)
        return [
            m.group(0)
            for m in _REACTION_VALUE.finditer(text)
            if not reactor or _names_any(reactor, " ".join(text[: m.start()].split()[-8:]))
        ]
    if kind in ("date", "number"):
        pattern = _DATE_VALUE if kind == "date" else _NUMBER_VALUE
        q = question.lower()
        return [
            m.group(0)
            for m in pattern.finditer(text)
            if not re.search(rf"(?<![\w.,]){re.escape(m.group(0).lower())}(?![\w]|[.,]\d)", q)
        ]
    asked = _expand(set(terms(question))) | topic
    if kind == "name":
        # a name is not new if it is what an acronym of the question stands for ("China
        # National Petroleum Corporation" for "CNPC"), nor when it is only an adjective of
        # nationality or region ("Chinese", "Central Asian")
        acronyms = set(re.findall(r"\b[A-Z]{2,}\b", question))
        found = [
            m.group(0)
            for m in _NAME_VALUE.finditer(text)
            if "".join(w[0] for w in re.findall(r"[A-Z][\w’'-]*", m.group(0))) not in acronyms
            and not all(_DEMONYM.search(w) or w.lower() in _REGIONS for w in m.group(0).split())
        ]
        return [
            v for v in found if not _CALENDAR.match(v) and (ts := set(terms(v))) and not ts & asked
        ]
    # a place is new if any of its words is: "in the Inner Mongolia Autonomous Region of
    # China" answers "where?" although the corpus is about China
    found = [m.group(1) for m in _PLACE_VALUE.finditer(text)]
    return [v for v in found if not _CALENDAR.match(v) and set(terms(v)) - asked]


@dataclass
class Candidate:
    """A sentence of a retrieved passage, with the evidence for and against it."""

    rank: int  # of its passage among the retrieved, 0 = best
    passage: StoredPassage
    start: int  # absolute span in the article
    end: int
    text: str
    vector: np.ndarray | None = None
    dense: float = 0.0
    coverage: float = 0.0
    score: float = 0.0
    says_nothing_new: bool = False  # its words are the question's (and connectives)
    slot: bool = False  # holds a value of the kind asked for that the question doesn't
    before: tuple[int, int, str] | None = None  # the sentence before it in the passage
    after: tuple[int, int, str] | None = None  # and the one after it


FEATURES = (
    "dense",
    "coverage",
    "support",
    "focus_missing",
    "unknown_names",
    "unknown",
    "slot_empty",
    "names_missing",
)


@dataclass(frozen=True)
class RefusalModel:
    """Weights of the answerability confidence (refuse when it is below zero).

    Fitted by ``bench/calibrate_refusal.py`` with its defaults: the 191 development
    questions of ``corpus/dev.jsonl`` that reach the model (sets 1-3; one about an
    article's author is decided by ``qa.about``), logistic regression with a small L2
    penalty, then the bias raised until at most 5% of the answerable development questions
    are refused (the evaluation's bar for false refusals; a false refusal is the costlier
    error). ``corpus/gold.jsonl`` is never used to fit. On dev: 4.7% false refusals and 60%
    of the unanswerable refused in-sample, 5.6% / 60% leave-one-out. The strongest evidence
    against answering is ``names_missing`` (a name, number or date of the question absent
    from the answer), ``focus_missing`` (the thing asked about absent) and ``slot_empty``
    (no value of the kind asked for); ``unknown`` adds nothing on dev once coverage is
    measured in meaning and is kept at 0.
    """

    weights: tuple[float, ...] = (0.97, 3.46, 0.57, -1.52, -0.77, 0.0, -2.30, -4.12)
    bias: float = -1.793

    def confidence(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * features[k] for w, k in zip(self.weights, FEATURES, strict=True))


@dataclass
class Selection:
    refused: bool
    sentences: list[Candidate]
    confidence: float
    features: dict[str, float] = field(default_factory=dict)


_AUX = r"(?!(?:did|does|do|is|was|were|are|will|would|has|have|had|can|could|should)\b)"
# "how many X" and "what is the X of Y" ask about X itself, so X must be in the answer;
# "which X" asks for instances of X ("which countries" -> "India, Japan"), so it is not used.
# words that qualify what is counted rather than name it ("how many *earlier* ones")
_MODIFIERS = (
    r"(?:(?:more|other|earlier|previous|prior|former|later|additional|further|extra|new|"
    r"different|separate|individual|total|such) )?"
)
# where the noun phrase asked about ends: a clause, a preposition, a name, the end
_NOUN_END = (
    r"(?=\s+(?-i:[A-Z])|\s+(?:that|which|who|whom|of|for|in|on|at|to|from|with|between|"
    r"behind|during|under|did|does|do|is|was|were|are|will|would|has|had)\b|\W*$)"
)
_FOCUS = [
    # "the name of the *pipeline* that ...", "the number of *sailors* on board": the kind of
    # answer is named first, then the thing it is of
    re.compile(
        r"\bthe (?:name|title|number|amount|size|length|cost|price)s? of (?:the |its |his |her |"
        rf"their |a |an )?(?:[a-z][\w-]* )??([a-z][\w-]*){_NOUN_END}",
        re.I,
    ),
    # "how large was the *prepayment* China made"
    re.compile(
        r"\bhow (?:large|big|long|high|old|far|heavy|wide|deep) (?:is|was|are|were|will be) "
        rf"(?:the|its|his|her|their) (?:[a-z][\w-]* )??([a-z][\w-]*){_NOUN_END}",
        re.I,
    ),
    # the counted noun after its qualifiers and names ("how many earlier Security Council
    # *resolutions*")
    re.compile(rf"\bhow (?:many|much) {_MODIFIERS}(?-i:[A-Z][\w-]* )*{_AUX}([a-z][\w-]*)", re.I),
    re.compile(
        r"\b(?:what|which|who) (?:is|was|are|were) (?:the|its|his|her|their) (?:([a-z]+) )?"
        r"([a-z][\w-]*) (?:of|for|in|per|on|at|between|behind|that|during)\b",
        re.I,
    ),
    re.compile(r"\b(?:what|which) ([a-z][\w-]*) per\b", re.I),  # "what price per unit"
]

# Capitals standing for their countries, as news writes them ("Moscow and Beijing agreed").
_CAPITALS = {
    "Moscow": "Russia Russian",
    "Beijing": "China Chinese",
    "Tokyo": "Japan Japanese",
    "Washington": "United States U.S. US America American",
    "Seoul": "Korea Korean",
    "Pyongyang": "North Korea",
    "Kiev": "Ukraine Ukrainian",
    "Kyiv": "Ukraine Ukrainian",
    "Brussels": "EU Europe European",
    "London": "Britain British UK",
    "Paris": "France French",
    "Berlin": "Germany German",
    "Delhi": "India Indian",
    "Tehran": "Iran Iranian",
    "Damascus": "Syria Syrian",
    "Ankara": "Turkey Turkish",
}
METONYMS = {terms(k)[0]: set(terms(v)) for k, v in _CAPITALS.items()}


_HEAD = re.compile(rf"\b(?:which|what) {_AUX}([a-z][\w-]*)(?: {_AUX}([a-z][\w-]*))?", re.I)


def head_terms(question: str) -> set[str]:
    """Terms of the one or two words after "which"/"what": the kind of thing wanted, whose
    instance the answer sentence should hold ("which Russian *warship*" -> "cruiser")."""
    match = _HEAD.search(question)
    return set(query_terms(" ".join(g for g in match.groups() if g))) if match else set()


_HOW_MANY = re.compile(r"\bhow many\b", re.I)
_COUNT_WORD = re.compile(
    r"^(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"dozens?|hundreds?|thousands?|millions?|billions?)$"
)


def counted_terms(text: str, reach: int = 3) -> set[str]:
    """Terms that follow a number within ``reach`` words: what the sentence counts
    ("14 vessels, two submarines" -> vessel, submarin)."""
    tokens = words(text)
    out: set[str] = set()
    for i, tok in enumerate(tokens):
        if _COUNT_WORD.match(tok):
            for nxt in tokens[i + 1 : i + 1 + reach]:
                out.update(terms(nxt))
    return out


# nouns that say what kind of answer is wanted, or stand for the earlier turn's subject,
# rather than naming a thing the answer must mention ("the *value* of", "the *point* of")
_NOT_FOCUS = set(
    terms(
        "value number amount figure size total sum count name title thing point purpose reason "
        "way "
        "kind type sort part ones one"
    )
)


# adjectives that qualify the kind of answer ("the *current* value") rather than name a thing
_QUALIFIERS = set(
    terms(
        "current total overall annual yearly monthly average estimated exact approximate final "
        "latest new real actual full net gross official expected initial original"
    )
)


def focus_term(question: str) -> str | None:
    """The stemmed term naming what is asked about ("how many *sailors*"), if any."""
    for pattern in _FOCUS:
        match = pattern.search(question)
        if match:
            *modifier, noun = match.groups()
            found = query_terms(noun)
            if (
                found
                and found[0] in _NOT_FOCUS
                and modifier
                and modifier[0]
                and not set(query_terms(modifier[0])) & _QUALIFIERS
            ):
                # "the *vote* count", "the *death* toll": the head names the kind of
                # answer, the word before it the thing
                found = query_terms(modifier[0]) or found
            if found:
                return None if found[0] in _NOT_FOCUS else found[0]
    return None


_CALENDAR_TERMS = set(
    terms(MONTHS.replace("|", " ") + " monday tuesday wednesday thursday friday saturday sunday")
)


def _variant(a: str, b: str) -> bool:
    """Two forms of one name: "russia"/"russian", "west"/"western", "china"/"chines"."""
    short = min(len(a), len(b))
    if short < 4:
        return False
    if a.startswith(b) or b.startswith(a):
        return True
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), short)
    return abs(len(a) - len(b)) <= 2 and common >= max(4, short - 1)


# connectives, which add nothing to what a sentence says ("However, there is also ...")
_DISCOURSE = set(
    terms("however also moreover furthermore besides still yet thus therefore hence indeed another")
)
# a sentence that hands over to the next one ("The reasons are as follows:")
_ANNOUNCES = re.compile(r"(?::|\bas follows\W*|\bthe following\W*)$")
# a sentence that leans on the one before it ("On the same day, ...", "The two leaders ...")
_LEANS_BACK = re.compile(
    r"\W*(?:(?:on|at|in|by|later|earlier) )?(?:the same|that|this|the next|the following|"
    r"the previous) (?:day|time|year|week|month|date)\b|\W*(?:later|then|afterwards|it|this|"
    r"that|they|these|those|he|she|the two|both)\b",
    re.I,
)


def _credit(similarity: float) -> float:
    """Partial presence for a match in meaning: 0 at cosine 0.40, 1 at 0.60 (corpus term
    vectors: "found"~"start" 0.50, "supply"~"provide" 0.46, unrelated words below 0.40)."""
    return min(1.0, max(0.0, (similarity - 0.40) / 0.20))


def _related(similarity: float) -> float:
    """Stricter than ``_credit``, for the thing asked about: a related thing ("vessels" for
    "sailors", 0.53) is not it; a synonym ("nations" for "countries") is. 0 at 0.55, 1 at
    0.70."""
    return min(1.0, max(0.0, (similarity - 0.55) / 0.15))


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _following(c: Candidate, cands: list[Candidate]) -> Candidate | None:
    """The sentence right after ``c`` in its article, if it was retrieved or is in c's
    passage."""
    nxt = [
        x
        for x in cands
        if x.passage.article_id == c.passage.article_id and 0 <= x.start - c.end <= 3
    ]
    if nxt:
        return nxt[0]
    if c.after is None:
        return None
    s, e, text = c.after
    return Candidate(c.rank, c.passage, s, e, text, coverage=c.coverage)


class ExtractiveAnswerer:
    def __init__(
        self,
        keyword: KeywordIndex,
        vocab: TermVectors | None = None,
        max_sentences: int = 2,
        margin: float = 0.06,
        refusal: RefusalModel | None = None,
        provenance: set[str] | None = None,
    ) -> None:
        self.keyword = keyword
        # terms naming the outlets of the indexed articles ("The Diplomat"): "according to
        # The Diplomat" says where, not what, so they don't count against an answer
        self.provenance = provenance or set()
        self.vocab = vocab or TermVectors([], np.zeros((0, DIM), dtype=np.float32))
        self.max_sentences = max_sentences
        self.margin = margin
        self.refusal = refusal or RefusalModel()
        # terms in most passages: the corpus's own subject ("China", "Russia"), which is
        # not news as the answer to "who" or "where"
        n = keyword.n_docs
        self.topic = frozenset(t for t, df in keyword.df.items() if n >= 4 and df > n / 2)

    def candidates(
        self, passages: list[StoredPassage], sentence_vecs: dict[str, np.ndarray]
    ) -> list[Candidate]:
        """Every sentence of the retrieved passages once (overlaps go to the better passage)."""
        out, seen = [], set()
        for rank, p in enumerate(passages):
            vecs = sentence_vecs.get(p.passage_id)
            spans = parse_sentence_spans(p.sentences)
            for i, (s, e) in enumerate(spans):
                key = (p.article_id, p.start + s, p.start + e)
                if key in seen:
                    continue
                seen.add(key)
                vec = vecs[i] if vecs is not None and i < len(vecs) else None
                c = Candidate(rank, p, p.start + s, p.start + e, p.text[s:e], vec)
                if i > 0:
                    b, f = spans[i - 1]
                    c.before = (p.start + b, p.start + f, p.text[b:f])
                if i + 1 < len(spans):
                    b, f = spans[i + 1]
                    c.after = (p.start + b, p.start + f, p.text[b:f])
                out.append(c)
        return out

    def _focus_missing(
        self,
        question: str,
        focus: str | None,
        answered: dict[str, float],
        said: set[str],
        best: list[Candidate],
        term_vecs: dict[str, np.ndarray],
    ) -> float:
        """How absent the thing asked about is from the answer sentences ("who is the *chief
        executive* of Gazprom" is not answered by a sentence naming no executive). For "how
        many X" the best sentences must also *count* X: "how many sailors" is not answered
        by "14 vessels, two submarines" even though sailors and vessels are related."""
        if focus is None or focus not in answered:
            return 0.0
        missing = 1.0 - answered[focus]
        if 0.0 < missing < 1.0 and focus in term_vecs:
            # found only in meaning: held to the stricter bound of ``_related`` ("leaders"
            # are related to an "executive" but are not one)
            sims = self.vocab.similarity(said, term_vecs[focus][None, :])
            missing = 1.0 - (_related(float(sims[0])) if len(sims) else 0.0)
        if not _HOW_MANY.search(question) or focus not in term_vecs:
            return missing
        return max(missing, 1.0 - self._counts(best, focus, term_vecs))

    def _counts(
        self, sentences: list[Candidate], focus: str, term_vecs: dict[str, np.ndarray]
    ) -> float:
        """How surely the sentences count the thing asked about (1 = word for word)."""
        counted = set().union(*(counted_terms(c.text) for c in sentences))
        if focus in counted:
            return 1.0
        sims = self.vocab.similarity(counted, term_vecs[focus][None, :])
        return _related(float(sims[0])) if len(sims) else 0.0

    def term_weights(self, q_terms: list[str]) -> np.ndarray:
        """IDF of each term; a capital standing for its country ("Moscow") weighs no more
        than the country's name does, since it is found wherever the country is."""
        out = self.keyword.weights(q_terms)
        for i, t in enumerate(q_terms):
            known = [m for m in METONYMS.get(t, ()) if m in self.keyword.df]
            if known:
                out[i] = min(out[i], min(self.keyword.idf(m) for m in known))
        return out

    def _terms_of(self, passage: StoredPassage) -> set[str] | frozenset[str]:
        found = self.keyword.terms_by_key.get(passage.passage_id)
        return found if found is not None else set(terms(passage.text))

    @staticmethod
    def term_vectors(query_states: tuple, wanted: set[str]) -> dict[str, np.ndarray]:
        """Contextual vector of each wanted term in the question (mean of its word pieces),
        from the question's own embedding pass."""
        encoding, states, text = query_states
        by_word: dict[int, list[int]] = {}
        for i, wid in enumerate(encoding.word_ids):
            if wid is not None:
                by_word.setdefault(wid, []).append(i)
        out: dict[str, np.ndarray] = {}
        for idxs in by_word.values():
            start, end = encoding.offsets[idxs[0]][0], encoding.offsets[idxs[-1]][1]
            stem = terms(text[start:end])
            if stem and stem[0] in wanted and stem[0] not in out:
                out[stem[0]] = _normalize_rows(states[idxs].mean(axis=0))
        return out

    def select(
        self,
        question: str,
        query: str,
        q_vec: np.ndarray,
        passages: list[StoredPassage],
        sentence_vecs: dict[str, np.ndarray],
        query_states: tuple | None = None,
    ) -> Selection:
        framing = answer_nouns(question) | self.provenance
        q_terms = [t for t in query_terms(query) if t not in framing] or query_terms(query)
        cands = self.candidates(passages, sentence_vecs)
        if not q_terms or not cands:
            return Selection(True, [], -1.0, {"terms": float(len(q_terms))})
        # the question's own words count fully; words carried over from earlier turns
        # (follow-ups) only steer, and the kind of thing asked for counts double
        own = set(query_terms(question)) or set(q_terms)
        # a pronoun ("where will *it* be held?") stands for a name carried over, which
        # counts more than the rest of the earlier turns' words
        referent = name_terms(query) - own if points_back(question) else set()
        heads = head_terms(question)
        weights = self.term_weights(q_terms) * np.array(
            [
                (1.0 if t in own else 0.6 if t in referent else 0.3) * (2.0 if t in heads else 1.0)
                for t in q_terms
            ]
        )
        total = float(weights.sum()) or 1.0
        kind = expected_type(question)
        q_set = set(q_terms)

        # names, numbers and dates are found word for word only: "Shanghai" is not found in
        # "China", "May" not in "March", "2014" not in "2013", however close in meaning
        strict = {t for t in q_terms if t[0].isdigit() or t in _CALENDAR_TERMS} | (
            name_terms(query) & q_set
        )
        term_vecs = self.term_vectors(query_states, q_set) if query_states else {}
        order = list(term_vecs)
        q_matrix = np.stack([term_vecs[t] for t in order]) if order else np.zeros((0, DIM))

        def presence(text_terms: set[str]) -> dict[str, float]:
            """Per question term: 1 if present word for word, else credit for a match in
            meaning with one of the text's terms (corpus term vectors)."""
            got = {
                t: 1.0 for t in q_terms if t in text_terms or METONYMS.get(t, set()) & text_terms
            }
            for t in strict - got.keys():
                if any(_variant(t, x) for x in text_terms):
                    got[t] = 1.0
            if len(got) < len(q_terms) and order:
                sims = self.vocab.similarity(text_terms, q_matrix)
                for j, t in enumerate(order):
                    if t not in got and t not in strict:
                        got[t] = _credit(float(sims[j]))
            return got

        def cover(got: dict[str, float]) -> float:
            return sum(w * got.get(t, 0.0) for t, w in zip(q_terms, weights, strict=True)) / total

        focus = focus_term(question)
        counting = bool(_HOW_MANY.search(question)) and focus in term_vecs

        def fills_slot(c: Candidate) -> bool:
            """A value of the kind asked for, not in the question; for "how many sailors" a
            number, and of sailors."""
            found = bool(slot_values(kind, c.text, query, self.topic))
            return found and (not counting or self._counts([c], focus, term_vecs) >= 0.5)

        for c in cands:
            s_terms = set(terms(c.text))
            c.dense = float(c.vector @ q_vec) if c.vector is not None else 0.0
            c.coverage = cover(presence(s_terms))
            score = 0.5 * c.dense + 0.5 * c.coverage + 0.02 / (1 + c.rank)
            c.slot = fills_slot(c)
            if kind is not None:
                score += 0.12 if c.slot else -0.12
            if len(words(c.text)) < 5 and not c.slot:
                score -= 0.15  # headings and credits: searchable, not an answer (a dateline
                # can be one: "When was it published?" -> "June 2, 2014")
            c.says_nothing_new = bool(s_terms) and s_terms <= q_set | _DISCOURSE
            if c.says_nothing_new and _following(c, cands) is None:
                score -= 0.2  # only repeats the question, and nothing follows it
            c.score = score
        ranked = sorted(cands, key=lambda c: -c.score)
        best = ranked[0]
        chosen = [best]
        for c in ranked[1:]:
            if len(chosen) >= self.max_sentences or c.score < best.score - self.margin:
                break
            if c.coverage > 0:
                chosen.append(c)
        if (
            kind is not None
            and not any(c.slot for c in chosen)
            and best.before is not None
            and _LEANS_BACK.match(best.text)
        ):
            # the value asked for is often given just before: "On May 21, ... . On the same
            # day, at the 4th summit ..., Xi proposed ..." ("when did Xi propose ...?")
            s, e, text = best.before
            lead = Candidate(best.rank, best.passage, s, e, text, coverage=best.coverage)
            lead.slot = fills_slot(lead)
            if lead.slot:
                chosen = [lead, best]

        if _ANNOUNCES.search(best.text) or best.says_nothing_new:
            # a sentence that only names what the question asks about ("However, there is
            # also a larger strategic reason.") or announces it ("...as follows:") leaves
            # the answer to the sentence after it (in its passage, or opening the next one)
            following = _following(best, cands)
            if following is not None:
                chosen = [best, following]

        near = passages[:3] + [c.passage for c in chosen if c.rank >= 3]
        in_passage = [presence(self._terms_of(p)) for p in near]
        anywhere = {t: max((g.get(t, 0.0) for g in in_passage), default=0.0) for t in q_terms}
        unknown = {t for t in q_terms if t not in self.keyword.df}
        names = unknown & name_terms(query)

        def missing(ts: set[str], found: dict[str, float]) -> float:
            """The weighted share of the question held by ``ts`` that ``found`` lacks."""
            return (
                sum(
                    w * (1.0 - found.get(t, 0.0))
                    for t, w in zip(q_terms, weights, strict=True)
                    if t in ts
                )
                / total
            )

        # the question's names, numbers and dates that the answer sentences lack
        # (counting what a sentence that leans on the one before it takes from it, and only
        # the question's own words, not those carried over from earlier turns)
        said = [c.text for c in chosen]
        said += [c.before[2] for c in chosen if c.before and _LEANS_BACK.match(c.text)]
        said_terms = set().union(*(terms(t) for t in said))
        in_answer = presence(said_terms)
        answered = {t: in_answer.get(t, 0.0) for t in q_terms}
        features = {
            "dense": max(c.dense for c in cands),
            "coverage": best.coverage,
            "support": max((cover(g) for g in in_passage), default=0.0),
            "focus_missing": self._focus_missing(
                question, focus, answered, said_terms, ranked[:3], term_vecs
            ),
            "unknown_names": missing(names, anywhere),
            "unknown": missing(unknown - names, anywhere),
            "slot_empty": float(kind is not None and not any(c.slot for c in chosen)),
            "names_missing": missing(strict & own, in_answer),
        }
        confidence = float(self.refusal.confidence(features))
        refused = confidence < 0
        return Selection(refused, [] if refused else chosen, confidence, features)

"""Stage 4, answer: retrieved passages to an ``Answer`` (text with ``[n]`` citations, the
short-answer span, or a refusal), by either answerer behind one interface (``base``).

The extractive answerer (``extractive``) runs the trained span reader (``reader``) and the
learned refusal decision (``refusal``), with the hand-written article-metadata questions
of ``about``; the LLM answerer (``generated``) talks to an OpenAI-compatible endpoint
(``llm``) and has every citation checked (``citations``). ``render`` turns an answer into
the JSON every surface shows.
"""

"""Stage 5, serve: the surfaces a person or a program uses over HTTP. ``service`` is the one
engine the server's surfaces share (answer slots, uploads, deletes); ``api`` the REST and
OpenAI-compatible routes; ``chat`` the Gradio web chat; ``server`` puts them in one app.
"""

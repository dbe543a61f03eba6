"""LangChain chat-model plumbing shared by the assistant's own models (below ``agents`` and
``agents.rules``, which both build on it)."""

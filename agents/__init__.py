"""The LLM side: model factory, secretary agent, summarizer, letter drafter. Never opens the DB."""

"""Wire-format translators: canonical types plus one module per format (openai_chat,
anthropic, gemini, responses). Pure functions and small stream state machines, no I/O."""

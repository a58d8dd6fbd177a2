"""Ask: questions in plain language over usage, answered by one safe SQL query.

`schema` documents what may be read (two read-only views) and builds the prompt; `guard`
parses the model's SQL with sqlglot and lets through a single SELECT over those views only,
with a LIMIT; `readonly` runs it read-only with a statement timeout; `service` asks the model
through Tollway itself (routed and metered, source `tollway-ask`) and suggests a chart.
"""

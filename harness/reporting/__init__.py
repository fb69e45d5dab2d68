"""What a run leaves for people and machines: redacted evidence, categories, charts, summaries.

Everything here reads the same data the verdict is built from. Secrets never reach a report:
`redact` knows the run's secrets and is applied where files are written (the Allure file
writer, verdict.json, the summaries, JUnit) and `redact.scan` checks a whole run folder.
"""
